"""The command line, and the composition root: the one place that wires settings, the
Postgres pool, Redis, the HTTP client and the apps together.

    hookline migrate | serve [--workers N] | worker [--processes N] | dev | tenant create
    | user create | secrets reencrypt
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import uvicorn
import uvloop
from redis.asyncio import Redis

from composition.web import build_app
from hookline import __version__
from hookline.db import Pool, open_pool
from hookline.errors import HooklineError
from hookline.metrics import Metrics
from hookline.migrations import migrate
from hookline.server import EdgeServer
from hookline.settings import Settings, SettingsError, load_settings

log = logging.getLogger("hookline")


def _redis(settings: Settings) -> Redis:
    assert settings.redis_url is not None
    client: Redis = Redis.from_url(
        settings.redis_url, socket_connect_timeout=2, health_check_interval=10
    )
    return client


@contextlib.asynccontextmanager
async def _services(settings: Settings) -> AsyncIterator[tuple[Pool, Redis]]:
    settings.require("database_url", "redis_url")
    redis = _redis(settings)
    try:
        async with open_pool(settings) as pool:
            yield pool, redis
    finally:
        await redis.aclose()


async def _migrate(settings: Settings) -> list[str]:
    async with open_pool(settings, size=2) as pool, pool.acquire() as conn:
        return await migrate(
            conn,  # type: ignore[arg-type]  # a pool proxy is a Connection
            statement_timeout=settings.migration_statement_timeout,
        )


async def _serve(
    settings: Settings,
    pool: Pool,
    redis: Redis,
    host: str,
    port: int,
    metrics: Metrics,
    fd: int | None = None,
) -> None:
    """Serve on ``host:port``, or on the listening socket ``fd`` (inherited by a child of
    ``serve --workers N``, or bound by ``dev`` before it starts anything else)."""
    config = uvicorn.Config(
        build_app(settings, pool, redis, metrics),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        lifespan="off",
        server_header=False,
    )
    _settle_gc()
    # uvicorn's own ``fd`` takes every inherited socket for a Unix one; this keeps its family
    sockets = None if fd is None else [socket.socket(fileno=fd)]
    await EdgeServer(config, settings).serve(sockets)


def _settle_gc() -> None:
    """Before a long-running process takes load: what start-up made (modules, the app, the
    schemas) leaves the collector's sight, and young collections run a fourteenth as often.

    Every request and delivery allocates thousands of short-lived objects; at the default
    threshold (700) the collector ran many times a second and walked the whole heap in
    its full passes, a tenth of the API's CPU at 4,000 requests/s.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


async def _work(
    settings: Settings,
    pool: Pool,
    redis: Redis,
    metrics: Metrics,
    until: Callable[[], Awaitable[None]] | None = None,
) -> None:
    from delivery.transport import create_transport
    from delivery.worker import run_worker

    transport = create_transport(settings)
    _settle_gc()
    try:
        await run_worker(settings, pool, redis, transport, metrics, until=until)
    finally:
        await transport.aclose()


# -- commands ------------------------------------------------------------------------------


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    applied = await _migrate(settings)
    print(
        f"applied {len(applied)} migration(s): {', '.join(applied)}"
        if applied
        else "database is up to date"
    )
    return 0


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("database_url", "redis_url", "secret_key")
    async with _services(settings) as (pool, redis):
        await _serve(settings, pool, redis, args.host, args.port, Metrics(), args.fd)
    return 0


async def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    settings.require("database_url", "redis_url", "secret_key")
    async with _services(settings) as (pool, redis):
        log.info("worker started (concurrency %d)", settings.worker_concurrency)
        await _work(settings, pool, redis, Metrics())
    return 0


async def cmd_tenant_create(settings: Settings, args: argparse.Namespace) -> int:
    from hookline.tenants import create_tenant

    async with open_pool(settings, size=2) as pool:
        tenant, key = await create_tenant(pool, args.name)
    if args.json:
        print(
            orjson.dumps(
                {"tenant": {"id": tenant.id, "name": tenant.name}, "api_key": key}
            ).decode()
        )
    else:
        print(
            f"tenant  {tenant.id}  {tenant.name}\napi key {key}\n"
            "(shown once: hookline keeps only a hash of it)"
        )
    return 0


async def cmd_user_create(settings: Settings, args: argparse.Namespace) -> int:
    from hookline.tenants import create_user

    password = args.password or getpass.getpass("password for the new user: ")
    async with open_pool(settings, size=2) as pool:
        user_id = await create_user(pool, args.tenant, args.email, password)
    print(f"user {user_id} {args.email.strip().lower()} can now log in")
    return 0


async def cmd_secrets_reencrypt(settings: Settings, args: argparse.Namespace) -> int:
    from hookline.endpoint_secrets import reseal_all
    from hookline.vault import Vault

    vault = Vault.from_settings(settings)
    async with open_pool(settings, size=2) as pool:
        done = await reseal_all(pool, vault, progress=lambda line: print(line, flush=True))
    print(
        f"resealed {done[0]} signing secret(s) and the headers of {done[1]} endpoint(s) "
        "under the current HOOKLINE_SECRET_KEY; keys in HOOKLINE_PREVIOUS_SECRET_KEYS are "
        "no longer needed for them"
    )
    return 0


async def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    from hookline.retention import purge, purgeable

    settings.require("database_url")
    if args.dry_run:
        async with open_pool(settings, size=2) as pool:
            report = await purgeable(pool, settings)
    else:
        print("purging in batches; ingest and delivery go on meanwhile", flush=True)
        found = await purge(settings)
        if found is None:
            print("a worker is running a purge pass now; nothing done")
            return 1
        report = found
    print(report.line())
    return 0


async def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from composition.dev import run_dev

    return await run_dev(settings, args, serve=_serve, work=_work, migrate=_migrate)


# -- parsing -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hookline", description="Webhook delivery platform.")
    parser.add_argument("--version", action="version", version=f"hookline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("migrate", help="apply pending database migrations").set_defaults(
        run=cmd_migrate
    )
    serve = sub.add_parser("serve", help="run the API and the dashboard")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=_count,
        default=1,
        metavar="N",
        help="processes sharing the port (default 1; one per core uses a machine's cores)",
    )
    serve.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(run=cmd_serve)
    worker = sub.add_parser("worker", help="run a delivery worker")
    worker.add_argument(
        "--processes",
        type=_count,
        default=1,
        metavar="N",
        help="worker processes (default 1); HOOKLINE_WORKER_METRICS_PORT P gives them P..P+N-1",
    )
    worker.set_defaults(run=cmd_worker)
    dev = sub.add_parser("dev", help="everything in one process, for a first look")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000, help="0: any free port (shown)")
    dev.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".hookline"),
        help="where embedded Postgres/Valkey keep data (default: .hookline)",
    )
    dev.set_defaults(run=cmd_dev)

    tenant = sub.add_parser("tenant", help="manage tenants").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = tenant.add_parser("create", help="create a tenant and print its API key")
    create.add_argument("name")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    create.set_defaults(run=cmd_tenant_create)

    user = sub.add_parser("user", help="manage operator logins").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    ucreate = user.add_parser("create", help="create an operator login")
    ucreate.add_argument("--tenant", required=True, help="tenant id (ten_...)")
    ucreate.add_argument("--email", required=True)
    ucreate.add_argument("--password", help="prompted for when absent")
    ucreate.set_defaults(run=cmd_user_create)

    purge = sub.add_parser(
        "purge",
        help="remove what is past its retention now (workers do it every "
        "HOOKLINE_PURGE_INTERVAL seconds)",
    )
    purge.add_argument("--dry-run", action="store_true", help="only say what the pass would remove")
    purge.set_defaults(run=cmd_purge)

    vault = sub.add_parser("secrets", help="stored credentials").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    vault.add_parser(
        "reencrypt",
        help="seal every stored credential under the current HOOKLINE_SECRET_KEY "
        "(after an upgrade or a key rotation)",
    ).set_defaults(run=cmd_secrets_reencrypt)
    return parser


def _count(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 256:
        raise argparse.ArgumentTypeError("a number from 1 to 256")
    return n


def _supervised(settings: Settings, args: argparse.Namespace) -> int | None:
    """``serve --workers N`` and ``worker --processes N`` with N > 1: run N children under
    the supervisor (before any event loop exists) and return their exit code; else None."""
    from composition.supervisor import listen, supervise

    if args.command == "serve" and args.workers > 1:
        settings.require("database_url", "redis_url", "secret_key")
        sock = listen(args.host, args.port, backlog=2048)
        fd = sock.fileno()
        log.info("serving on http://%s:%d with %d processes", args.host, args.port, args.workers)
        return supervise(
            "hookline serve", args.workers, lambda i: ["serve", "--fd", str(fd)], pass_fds=[fd]
        )
    if args.command == "worker" and args.processes > 1:
        settings.require("database_url", "redis_url", "secret_key")
        port = settings.worker_metrics_port

        def env(i: int) -> dict[str, str]:
            if not port:
                return dict(os.environ)
            return {**os.environ, "HOOKLINE_WORKER_METRICS_PORT": str(port + i)}

        return supervise("hookline worker", args.processes, lambda i: ["worker"], env=env)
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
        if args.command not in ("dev",):
            settings.require("database_url")
        supervised = _supervised(settings, args)
        if supervised is not None:
            return supervised
        # uvloop (installed with uvicorn[standard]): socket writes and callbacks in C
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            code: int = runner.run(args.run(settings, args))
        return code
    except SettingsError as exc:
        print(f"hookline: {exc}", file=sys.stderr)
        return 2
    except HooklineError as exc:
        print(f"hookline: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
