"""Ingest and end-to-end scenarios, each beside its baseline, on real processes.

ingest      POST /v1/events to `hookline serve` (32 concurrent producers)
            vs a raw asyncpg loop running the same ingest SQL at the same concurrency
e2e         events POSTed to `hookline serve` at full speed while one `hookline worker`
            delivers them to a receiver process, until the last is recorded as
            succeeded; vs a raw loop of signed POSTs
            from one process to the same receiver (same concurrency as the worker)
latency     202 from POST /v1/events -> arrival at the receiver, at half the e2e rate
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from api.endpoint_models import EndpointIn
from delivery.signing import sign
from hookline.db import QUERIES, open_pool
from hookline.endpoints import create_endpoint
from hookline.migrations import migrate
from hookline.secrets import new_signing_secret
from hookline.settings import load_settings
from hookline.tenants import create_tenant
from tests.processes import settings_env

ROOT = Path(__file__).resolve().parent.parent
LANES = 64  # strict endpoints, one lane each: deliveries run in parallel across them
PRODUCERS = 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_http(url: str) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _process(
    args: list[str], env: dict[str, str] | None, ready_url: str | None
) -> AsyncIterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if ready_url:
            await _wait_http(ready_url)
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


@contextlib.asynccontextmanager
async def _database(admin_url: str) -> AsyncIterator[str]:
    name = f"hookline_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rpartition("/")[0] + "/" + name
    try:
        db = await asyncpg.connect(url)
        await migrate(db)
        await db.close()
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def _concurrently(n: int, workers: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Run ``one(i)`` for i < n on ``workers`` tasks; return the rate per second."""
    counter = iter(range(n))

    async def loop() -> None:
        for i in counter:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(workers)))
    return n / (time.perf_counter() - start)


async def _arrivals(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with session.get(f"{base}/stats") as r:
        found: dict[str, float] = (await r.json())["arrivals"]
        return found


async def _until_arrived(session: aiohttp.ClientSession, base: str, n: int) -> dict[str, float]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        async with session.get(f"{base}/count") as r:
            if int(await r.text()) >= n:
                break
        await asyncio.sleep(0.05)
    return await _arrivals(session, base)


async def _until_recorded(pool: asyncpg.Pool, n: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done = await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
        if done >= n:
            return
        await asyncio.sleep(0.05)


def _event(i: int) -> dict[str, Any]:
    return {"type": f"t.{i % LANES}", "subject": f"order_{i}", "data": {"n": i, "total": 42}}


async def run_all(admin_url: str, redis_url: str, *, quick: bool) -> None:
    n = 3000 if quick else 12000
    rows: list[tuple[str, ...]] = []
    async with _database(admin_url) as db_url:
        settings = load_settings(
            env={},
            database_url=db_url,
            redis_url=redis_url,
            secret_key=secrets.token_urlsafe(48),
            allowed_target_networks=["127.0.0.0/8"],
            namespace=f"bench-{secrets.token_hex(3)}",
            ingest_rate_limit=0,
            worker_concurrency=LANES,
            claim_batch=LANES,
        )
        rport, aport = _free_port(), _free_port()
        rbase, abase = f"http://127.0.0.1:{rport}", f"http://127.0.0.1:{aport}"
        async with open_pool(settings, size=PRODUCERS) as pool:
            tenant, key = await create_tenant(pool, "bench")
            await pool.execute(QUERIES["create_subscriber"], tenant.id, "s", "")
            for i in range(LANES):
                fields = EndpointIn(subscriber="s", url=f"{rbase}/hook/{i}", event_types=[f"t.{i}"])
                await create_endpoint(
                    pool, tenant.id, settings.allowed_networks, fields.model_dump()
                )
            env = settings_env(settings)
            headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
            async with (
                _process(["bench.receiver", str(rport)], None, f"{rbase}/stats"),
                _process(["hookline", "serve", "--port", str(aport)], env, f"{abase}/healthz"),
                aiohttp.ClientSession(headers=headers) as http,
            ):

                async def post(i: int) -> str:
                    async with http.post(f"{abase}/v1/events", data=orjson.dumps(_event(i))) as r:
                        assert r.status == 202, await r.text()
                        event_id: str = (await r.json())["id"]
                        return event_id

                rows.append(await _ingest(pool, tenant.id, post, n))
                await _truncate(pool)
                rows.append(await _batch_ingest(pool, tenant.id, http, abase, n * 10))
                await _truncate(pool)
                e2e_row, rate = await _e2e(pool, env, http, rbase, post, n)
                rows.append(e2e_row)
                await _truncate(pool)
                rows.append(await _latency(env, http, rbase, post, rate / 2))
    _print(rows)


Post = Callable[[int], Awaitable[str]]


async def _truncate(pool: asyncpg.Pool) -> None:
    await pool.execute("TRUNCATE deliveries, attempts, events, lanes CASCADE")


async def _ingest(pool: asyncpg.Pool, tenant_id: str, post: Post, n: int) -> tuple[str, ...]:
    async def raw(i: int) -> None:
        await _raw_ingest(pool, tenant_id, [_event(i)])

    baseline = await _concurrently(n, PRODUCERS, raw)
    await _truncate(pool)

    async def one(i: int) -> None:
        await post(i)

    ours = await _concurrently(n, PRODUCERS, one)
    return (
        "single-event ingest (events/s)",
        f"{ours:,.0f}",
        f"{baseline:,.0f}",
        f"{ours / baseline:.2f}",
        ">= 0.60",
    )


async def _raw_ingest(pool: asyncpg.Pool, tenant_id: str, events: list[dict[str, Any]]) -> None:
    """The baseline: the ingest statement itself, straight from asyncpg."""
    n = len(events)
    await pool.fetch(
        QUERIES["ingest_events"],
        tenant_id,
        [None] * n,
        [e["type"] for e in events],
        [e["subject"] for e in events],
        [None] * n,
        [None] * n,
        [None] * n,
        [e["data"] for e in events],
        [None] * n,
        [None] * n,
        None,
    )


async def _batch_ingest(
    pool: asyncpg.Pool, tenant_id: str, http: aiohttp.ClientSession, abase: str, n: int
) -> tuple[str, ...]:
    """POST /v1/events/batch with 1000 events each, 4 producers; vs the same SQL raw."""
    size, producers = 1000, 4
    batches = n // size

    async def raw(b: int) -> None:
        await _raw_ingest(pool, tenant_id, [_event(b * size + i) for i in range(size)])

    baseline = await _concurrently(batches, producers, raw) * size
    await _truncate(pool)

    async def post(b: int) -> None:
        body = orjson.dumps({"events": [_event(b * size + i) for i in range(size)]})
        async with http.post(f"{abase}/v1/events/batch", data=body) as r:
            assert r.status == 202, await r.text()

    ours = await _concurrently(batches, producers, post) * size
    return (
        "batch ingest, 1000 per request (events/s)",
        f"{ours:,.0f}",
        f"{baseline:,.0f}",
        f"{ours / baseline:.2f}",
        ">= 20,000 events/s",
    )


async def _e2e(
    pool: asyncpg.Pool,
    env: dict[str, str],
    http: aiohttp.ClientSession,
    rbase: str,
    post: Post,
    n: int,
) -> tuple[tuple[str, ...], float]:
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
        async with http.post(f"{rbase}/hook/{i % LANES}", data=body, headers=headers) as r:
            await r.read()

    baseline = await _concurrently(n, LANES, signed_post)
    await http.post(f"{rbase}/reset")

    async def one(i: int) -> None:
        await post(i)

    async with _process(["hookline", "worker"], env, None):
        start = time.perf_counter()
        await _concurrently(n, PRODUCERS, one)
        got = await _until_arrived(http, rbase, n)
        await _until_recorded(pool, n)
        elapsed = time.perf_counter() - start
    ours = len(got) / elapsed
    await http.post(f"{rbase}/reset")
    return (
        (
            "end to end (deliveries/s)",
            f"{ours:,.0f}",
            f"{baseline:,.0f}",
            f"{ours / baseline:.2f}",
            ">= 0.50",
        ),
        ours,
    )


async def _latency(
    env: dict[str, str], http: aiohttp.ClientSession, rbase: str, post: Post, rate: float
) -> tuple[str, ...]:
    acked: dict[str, float] = {}
    count = int(rate * 5)
    async with _process(["hookline", "worker"], env, None):
        # warm up: timing starts once the worker has delivered one event
        await post(0)
        await _until_arrived(http, rbase, 1)
        await http.post(f"{rbase}/reset")
        start = time.perf_counter()

        async def timed(i: int) -> None:
            event_id = await post(i)
            acked[event_id] = time.time()

        tasks = []
        for i in range(count):
            # open loop: a fixed offered rate, whatever the answers take
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(timed(i)))
        await asyncio.gather(*tasks)
        got = await _until_arrived(http, rbase, count)
    lat = sorted((got[k] - t) * 1000 for k, t in acked.items() if k in got)
    p50 = statistics.median(lat)
    p99 = lat[int(len(lat) * 0.99) - 1]
    return (
        f"latency at {rate:,.0f}/s (ms)",
        f"p50 {p50:.1f} p99 {p99:.1f}",
        "-",
        "-",
        "p50 < 10, p99 < 50",
    )


def _print(rows: list[tuple[str, ...]]) -> None:
    head = ("scenario", "hookline", "baseline", "ratio", "budget")
    table = [head, *rows]
    widths = [max(len(r[c]) for r in table) for c in range(len(head))]
    for i, r in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
