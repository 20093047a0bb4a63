"""What every scenario stands on: real processes, a scratch database, tenants with
endpoints on the benchmark receiver, the raw signed-POST baseline, and the result table.

One :class:`Rig` serves a whole invocation: one database, one ``hookline serve``, one
receiver process. Each scenario makes its own tenant (events fan out only to their
tenant's endpoints), starts ``hookline worker`` processes as it needs them, and leaves
the delivery tables empty behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import asyncpg
import orjson

from api.endpoint_models import EndpointIn
from delivery.signing import sign
from hookline.db import QUERIES, Queries, open_pool
from hookline.endpoints import create_endpoint
from hookline.migrations import migrate
from hookline.secrets import new_signing_secret
from hookline.settings import Settings, load_settings
from hookline.tenants import create_tenant
from hookline.vault import Vault
from tests.processes import settings_env

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 64  # the worker's requests in flight, and the raw baseline's
PRODUCERS = 32
RAW_MIN = 5000  # signed POSTs timed at least in the raw baseline
WAIT = 120.0  # longest any scenario waits for deliveries before it gives up
FLOORS = Queries(Path(__file__).resolve().parent / "sql")


class BenchError(Exception):
    """A scenario could not finish; the message says what was missing."""


@dataclass(frozen=True)
class Row:
    """One line of the result table."""

    scenario: str
    ours: str
    baseline: str
    ratio: str
    budget: str
    meets: bool | None  # None: nothing to hold it to

    def cells(self) -> tuple[str, ...]:
        verdict = "-" if self.meets is None else ("yes" if self.meets else "NO")
        return (self.scenario, self.ours, self.baseline, self.ratio, self.budget, verdict)


def print_table(rows: Sequence[Row]) -> None:
    head = ("scenario", "hookline", "baseline", "ratio", "budget", "meets")
    table = [head, *(r.cells() for r in rows)]
    widths = [max(len(r[c]) for r in table) for c in range(len(head))]
    for i, r in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def percentile(ordered: Sequence[float], p: float) -> float:
    """The ``p`` (0-100) percentile of an ascending, non-empty sequence (nearest rank)."""
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_ready(url: str, name: str, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    """Wait until ``url`` answers; fail with the process's last words if it exits first."""
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                said = log.read().decode(errors="replace").strip().splitlines()[-15:]
                state = f"exited {proc.returncode}" if proc.poll() is not None else "timed out"
                raise BenchError(f"{name} {state} before {url} answered:\n" + "\n".join(said))
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def process(
    args: list[str], env: dict[str, str] | None, ready_url: str | None
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """``python -m *args`` in the repository, stopped on exit (SIGTERM, SIGKILL after
    40 s); its stderr is kept to explain a start that fails."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            if ready_url:
                await _wait_ready(ready_url, " ".join(args), proc, log)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(40)  # a worker finishes its attempts in flight (up to a deadline)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.asynccontextmanager
async def _database(admin_url: str) -> AsyncIterator[str]:
    name = f"hookline_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rpartition("/")[0] + "/" + name
    try:
        db = await asyncpg.connect(url)
        await migrate(db)
        await db.execute(FLOORS["create_outbox"])
        await db.close()
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def concurrently(n: int, workers: int, one: Callable[[int], Awaitable[object]]) -> float:
    """Run ``one(i)`` for i < n on ``workers`` tasks; return the rate per second."""
    counter = iter(range(n))

    async def loop() -> None:
        for i in counter:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(workers)))
    return n / (time.perf_counter() - start)


@dataclass(frozen=True)
class Arrived:
    """What the receiver saw (see bench.receiver); times are unix seconds."""

    arrivals: dict[str, float]  # webhook-id -> its first arrival at a healthy endpoint
    deliveries: int  # (endpoint, webhook-id) pairs that arrived at healthy endpoints
    first: float | None
    last: float | None
    refused: int  # 503s while down
    failed: int  # 500s from /fail
    hung: int  # requests to /hang

    def span(self, since: float | None = None) -> float:
        """Seconds from ``since`` (default: the first arrival) to the last arrival."""
        assert self.first is not None and self.last is not None, "nothing arrived"
        return self.last - (self.first if since is None else since)


@dataclass(frozen=True)
class Tenant:
    """A tenant of the benchmark, with a session that sends events as it."""

    id: str
    http: aiohttp.ClientSession  # authorised as this tenant
    api: str

    async def post(self, event: dict[str, Any]) -> str:
        """POST /v1/events; the event's id once it is acknowledged (202)."""
        async with self.http.post(f"{self.api}/v1/events", data=orjson.dumps(event)) as r:
            if r.status != 202:
                raise BenchError(f"ingest answered {r.status}: {await r.text()}")
            event_id: str = (await r.json())["id"]
            return event_id

    async def post_batch(self, events: list[dict[str, Any]]) -> None:
        body = orjson.dumps({"events": events})
        async with self.http.post(f"{self.api}/v1/events/batch", data=body) as r:
            if r.status != 202:
                raise BenchError(f"batch ingest answered {r.status}: {await r.text()}")


class Rig:
    """The processes and connections one invocation shares."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        http: aiohttp.ClientSession,
        stack: contextlib.AsyncExitStack,
        api: str,
        receiver: str,
    ) -> None:
        self.settings = settings
        self.env = settings_env(settings)
        self.pool = pool
        self.http = http  # unauthenticated: for the receiver and the raw baseline
        self.api = api
        self.receiver = receiver
        self.raw_cpu = 0.0  # CPU seconds per request of the last raw_posts run
        self._stack = stack

    # -- set-up -----------------------------------------------------------------------

    async def tenant(self, name: str, endpoints: Sequence[dict[str, Any]]) -> Tenant:
        """A new tenant with one subscriber ``s`` and ``endpoints`` (EndpointIn fields
        without ``subscriber``; ``path`` is the receiver path, e.g. ``/hook/3``)."""
        made, key = await create_tenant(self.pool, name)
        await self.pool.execute(QUERIES["create_subscriber"], made.id, "s", "")
        allowed = self.settings.allowed_networks
        vault = Vault.from_settings(self.settings)

        async def one(i: int) -> None:
            fields = dict(endpoints[i])
            fields["url"] = self.receiver + fields.pop("path")
            checked = EndpointIn(subscriber="s", **fields).model_dump()
            await create_endpoint(self.pool, made.id, allowed, checked, quota=0, vault=vault)

        await concurrently(len(endpoints), 16, one)
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        http = await self._stack.enter_async_context(aiohttp.ClientSession(headers=headers))
        return Tenant(made.id, http, self.api)

    def worker(
        self, **settings: object
    ) -> contextlib.AbstractAsyncContextManager[subprocess.Popen[bytes]]:
        """One ``hookline worker`` process (with ``settings`` overriding the rig's, e.g.
        ``worker_concurrency=256``), up once it serves its metrics (so its start-up is
        not timed), stopped (SIGTERM) on exit."""
        port = _free_port()
        env = {**self.env, "HOOKLINE_WORKER_METRICS_PORT": str(port)}
        env.update({f"HOOKLINE_{k.upper()}": str(v) for k, v in settings.items()})
        return process(["hookline", "worker"], env, f"http://127.0.0.1:{port}/metrics")

    async def truncate(self) -> None:
        await self.pool.execute("TRUNCATE deliveries, attempts, events, lanes CASCADE")
        await self.reset()

    # -- the receiver -----------------------------------------------------------------

    async def reset(self) -> None:
        async with self.http.post(f"{self.receiver}/reset") as r:
            await r.read()

    async def receiver_down(self, down: bool) -> float:
        """Make healthy endpoints answer 503 (or stop); return the unix time it changed."""
        async with self.http.post(f"{self.receiver}/mode?down={int(down)}") as r:
            await r.read()
        return time.time()

    async def stats(self) -> Arrived:
        async with self.http.get(f"{self.receiver}/stats") as r:
            found = await r.json()
        return Arrived(**found)

    async def until_arrived(self, n: int) -> Arrived:
        """Wait until ``n`` deliveries reached healthy endpoints; the receiver's stats."""
        deadline = time.monotonic() + WAIT
        while True:
            async with self.http.get(f"{self.receiver}/count") as r:
                got = int(await r.text())
            if got >= n:
                return await self.stats()
            if time.monotonic() > deadline:
                raise BenchError(f"only {got} of {n} deliveries arrived within {WAIT:.0f}s")
            await asyncio.sleep(0.02)

    async def until_recorded(self, n: int) -> None:
        """Wait until ``n`` deliveries are recorded as succeeded in Postgres."""
        deadline = time.monotonic() + WAIT
        query = "SELECT count(*) FROM deliveries WHERE status = 'succeeded'"
        while (done := await self.pool.fetchval(query)) < n:
            if time.monotonic() > deadline:
                raise BenchError(f"only {done} of {n} deliveries recorded within {WAIT:.0f}s")
            await asyncio.sleep(0.05)

    # -- the baseline -----------------------------------------------------------------

    async def raw_posts(self, n: int, endpoints: int) -> float:
        """The baseline: signed POSTs from this process to ``/hook/{i % endpoints}`` of the
        same receiver, ``CONCURRENCY`` at a time; the rate per second. After a warm-up
        (connections open), at least ``RAW_MIN`` are timed: fewer take a fraction of a
        second and swing widely. The receiver is reset afterwards. The CPU this process
        spent per timed request is kept in ``raw_cpu`` (seconds)."""
        secret = new_signing_secret()

        async def signed_post(i: int) -> None:
            body = orjson.dumps({"id": f"raw_{i}", "type": "t", "timestamp": "x"})
            ts = int(time.time())
            headers = {
                "webhook-id": f"raw_{i}",
                "webhook-timestamp": str(ts),
                "webhook-signature": sign([secret], f"raw_{i}", ts, body),
                "content-type": "application/json",
            }
            url = f"{self.receiver}/hook/{i % endpoints}"
            async with self.http.post(url, data=body, headers=headers) as r:
                await r.read()

        await concurrently(CONCURRENCY * 4, CONCURRENCY, signed_post)
        timed = max(n, RAW_MIN)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        rate = await concurrently(timed, CONCURRENCY, signed_post)
        after = resource.getrusage(resource.RUSAGE_SELF)
        used = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
        self.raw_cpu = used / timed
        await self.reset()
        return rate


@contextlib.asynccontextmanager
async def open_rig(admin_url: str, redis_url: str) -> AsyncIterator[Rig]:
    """A scratch database, the receiver and ``hookline serve``; all gone on exit."""
    async with _database(admin_url) as db_url, contextlib.AsyncExitStack() as stack:
        settings = load_settings(
            env={},
            database_url=db_url,
            redis_url=redis_url,
            secret_key=secrets.token_urlsafe(48),
            allowed_target_networks=["127.0.0.0/8"],
            namespace=f"bench-{secrets.token_hex(3)}",
            ingest_rate_limit=0,
            worker_concurrency=CONCURRENCY,
            claim_batch=CONCURRENCY,
        )
        rport, aport = _free_port(), _free_port()
        receiver, api = f"http://127.0.0.1:{rport}", f"http://127.0.0.1:{aport}"
        pool = await stack.enter_async_context(open_pool(settings, size=PRODUCERS))
        await stack.enter_async_context(
            process(["bench.receiver", str(rport)], None, f"{receiver}/stats")
        )
        await stack.enter_async_context(
            process(
                ["hookline", "serve", "--port", str(aport)],
                settings_env(settings),
                f"{api}/healthz",
            )
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Rig(settings, pool, http, stack, api, receiver)
