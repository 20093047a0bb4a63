"""``hookline dev``: a whole installation in one process, for a first look.

Uses ``HOOKLINE_DATABASE_URL`` / ``HOOKLINE_REDIS_URL`` when set, else embedded Postgres and
Valkey in the data folder; migrates; creates a demo tenant, operator and subscriber once
(kept in ``demo.json`` in the data folder, since hookline itself keeps only hashes); then
serves the API and dashboard and runs a worker side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from composition.supervisor import listen
from hookline.db import Pool, open_pool
from hookline.endpoint_secrets import reseal_all
from hookline.errors import HooklineError
from hookline.metrics import Metrics
from hookline.settings import Settings
from hookline.vault import Vault

log = logging.getLogger("composition.dev")

Serve = Callable[[Settings, Pool, Redis, str, int, Metrics, int | None], Coroutine[Any, Any, None]]
Work = Callable[..., Awaitable[None]]
Migrate = Callable[[Settings], Awaitable[list[str]]]


@contextlib.asynccontextmanager
async def _backing_services(settings: Settings, data_dir: Path) -> AsyncIterator[Settings]:
    """Settings pointing at Postgres and Redis: the configured ones or embedded ones."""
    need_pg, need_redis = not settings.database_url, not settings.redis_url
    if not (need_pg or need_redis):
        yield settings
        return
    from composition.embedded import embedded_services

    async with embedded_services(
        data_dir, need_postgres=need_pg, need_redis=need_redis
    ) as services:
        updates: dict[str, Any] = {}
        if need_pg:
            updates["database_url"] = services.database_url
        if need_redis:
            updates["redis_url"] = services.redis_url
        yield settings.model_copy(update=updates)


def _dev_defaults(settings: Settings, data_dir: Path) -> Settings:
    """A persistent secret key and, unless configured, loopback receivers allowed."""
    updates: dict[str, Any] = {}
    if not settings.secret_key:
        key_file = data_dir / "secret_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(48))
            key_file.chmod(0o600)
        updates["secret_key"] = key_file.read_text().strip()
    if not settings.allowed_target_networks:
        # a first look usually points at a receiver on the same machine
        updates["allowed_target_networks"] = ["127.0.0.0/8", "::1/128"]
    return settings.model_copy(update=updates)


async def _demo(pool: Pool, data_dir: Path) -> dict[str, str]:
    """The demo tenant, operator and subscriber, created on the first run only."""
    from hookline.subscribers import create_subscriber
    from hookline.tenants import create_tenant, create_user

    demo_file = data_dir / "demo.json"
    if demo_file.exists():
        demo: dict[str, str] = json.loads(demo_file.read_text())
        if await pool.fetchval("SELECT 1 FROM tenants WHERE id = $1", demo["tenant_id"]):
            return demo
    tenant, key = await create_tenant(pool, "Demo")
    password = secrets.token_urlsafe(12)
    email = "demo@hookline.local"
    await pool.execute("DELETE FROM users WHERE email = $1", email)
    await create_user(pool, tenant.id, email, password)
    await create_subscriber(pool, tenant.id, "demo-customer", "Demo customer", quota=0)
    demo = {
        "tenant_id": tenant.id,
        "api_key": key,
        "email": email,
        "password": password,
        "subscriber": "demo-customer",
    }
    demo_file.write_text(json.dumps(demo, indent=2))
    demo_file.chmod(0o600)
    return demo


def _banner(settings: Settings, demo: dict[str, str], host: str, port: int) -> str:
    base = f"http://{host}:{port}"
    return f"""
  hookline is running
  -------------------
  dashboard   {base}/
  api docs    {base}/docs
  login       {demo["email"]} / {demo["password"]}
  api key     {demo["api_key"]}
  subscriber  {demo["subscriber"]}

  Register an endpoint (any receiver on this machine works in dev mode):
    curl -s {base}/v1/endpoints -H 'authorization: Bearer {demo["api_key"]}' \\
      -d '{{"subscriber": "{demo["subscriber"]}", "url": "http://127.0.0.1:9000/hook"}}'
  Send an event:
    curl -s {base}/v1/events -H 'authorization: Bearer {demo["api_key"]}' \\
      -d '{{"type": "order.created", "subject": "order_1", "data": {{"total": 42}}}}'
  Press Ctrl+C to stop.
"""


async def _finished(task: asyncio.Task[None]) -> None:
    await asyncio.shield(task)


async def run_dev(
    settings: Settings,
    args: argparse.Namespace,
    *,
    serve: Serve,
    work: Work,
    migrate: Migrate,
) -> int:
    # the port first: taken, say so before starting anything; 0, the real one is known now
    # (and no embedded server picking a free port can take it meanwhile)
    try:
        sock = listen(args.host, args.port, backlog=2048)
    except OSError as exc:
        raise HooklineError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror}); choose another with --port"
        ) from None
    port: int = sock.getsockname()[1]
    listening = sock.detach()  # the server's from here on (it closes it)
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, at start)
    settings = _dev_defaults(settings, data_dir)
    if settings.public_url == Settings.model_fields["public_url"].default:
        settings = settings.model_copy(update={"public_url": f"http://{args.host}:{port}"})
    async with _backing_services(settings, data_dir) as settings:
        applied = await migrate(settings)
        log.info("migrations: %s", ", ".join(applied) or "up to date")
        redis = Redis.from_url(settings.redis_url or "", socket_connect_timeout=2)
        try:
            async with open_pool(settings) as pool:
                demo = await _demo(pool, data_dir)
                # credentials stored by an older version are sealed now (usually none)
                await reseal_all(pool, Vault.from_settings(settings))
                print(_banner(settings, demo, args.host, port), flush=True)
                # one process, one registry: /metrics shows ingest and delivery together
                metrics = Metrics()
                server = asyncio.create_task(
                    serve(settings, pool, redis, args.host, port, metrics, listening)
                )
                # the worker stops when the server does (uvicorn owns Ctrl+C in dev)
                await work(settings, pool, redis, metrics, until=lambda: _finished(server))
        finally:
            await redis.aclose()
    return 0
