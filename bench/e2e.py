"""Ingest, end-to-end and latency scenarios, each beside its baseline, on real processes.

All use one tenant with ``LANES`` strict endpoints, endpoint ``i`` wanting type ``t.i``,
so consecutive events go to different endpoints and deliveries run in parallel.

ingest      POST /v1/events to `hookline serve` (32 concurrent producers, each waiting for
            its 202), events no endpoint wants, then events all for one strict endpoint
            (a hot lane); vs a plain outbox insert (an event row and a delivery row in
            one statement) from 32 asyncpg connections, and vs the ceiling both that
            insert and the HTTP floor (GET /healthz, same client) leave on these cores
batch       POST /v1/events/batch, 1000 events each (4 producers) vs the ingest SQL raw
e2e         events POSTed to `hookline serve` at full speed while one `hookline worker`
            delivers them to a receiver process, until the last is recorded as
            succeeded; vs a raw loop of signed POSTs from one process to the same
            receiver (same concurrency as the worker). Twice: single-event ingests (32
            producers), then batches of 100 (4 producers), which leaves the delivery path
            without one commit per event in front of it
latency     open loop at a fixed offered rate of single-event ingests: the producer notes
            when it sends each request, the receiver when the event arrived; p50/p95/p99.
            At half the e2e rate just measured, at a fixed 100 events/s, and at 100/s
            while another process keeps one core busy
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp

from bench.harness import FLOORS, PRODUCERS, Rig, Row, Tenant, concurrently, percentile
from hookline.db import QUERIES

LANES = 64
FIXED_RATE = 100.0  # events/s offered in the fixed-load latency run


def _event(i: int) -> dict[str, Any]:
    return {"type": f"t.{i % LANES}", "subject": f"order_{i}", "data": {"n": i, "total": 42}}


async def e2e_tenant(rig: Rig) -> Tenant:
    return await rig.tenant(
        "bench",
        [
            {"path": f"/hook/{i}", "ordering": "strict", "event_types": [f"t.{i}"]}
            for i in range(LANES)
        ],
    )


async def hot_tenant(rig: Rig) -> Tenant:
    """A big customer's "all events" endpoint: one strict lane every event goes to."""
    return await rig.tenant("hot", [{"path": "/hook/hot", "ordering": "strict"}])


async def outbox_floor(rig: Rig, n: int) -> float:
    """The floor of single-event ingest: a plain outbox insert (the event and one delivery
    in one statement, one commit each) from ``PRODUCERS`` asyncpg connections."""

    async def insert(i: int) -> None:
        event = _event(i)
        await rig.pool.execute(
            FLOORS["outbox_insert"], f"evt_{i}", "ten_floor", event["type"], event["data"], "ep_1"
        )

    rate = await concurrently(n, PRODUCERS, insert)
    await rig.pool.execute(FLOORS["truncate_outbox"])
    return rate


async def ingest(rig: Rig, tenant: Tenant, hot: Tenant, n: int) -> list[Row]:
    """Single-event ingest, ``PRODUCERS`` producers each waiting for its 202: events no
    endpoint wants, then events that all go to one strict endpoint; both against the
    plain outbox insert."""
    floor = await outbox_floor(rig, n)

    async def healthz(i: int) -> None:
        async with tenant.http.get(f"{tenant.api}/healthz") as r:
            await r.read()

    http = await concurrently(n, PRODUCERS, healthz)
    # Both floors keep these cores busy on their own, so work that must do both (an HTTP
    # exchange and a durable insert) can at best go at the rate of doing one after the
    # other: 1 / (1/http + 1/insert).
    ceiling = 1 / (1 / http + 1 / floor)

    async def unwanted(i: int) -> None:
        await tenant.post({**_event(i), "type": "unwanted"})

    async def to_hot(i: int) -> None:
        await hot.post(_event(i))

    rows = []
    for what, one, budget in (
        ("single-event ingest, no endpoint wants them", unwanted, 0.5),
        ("hot lane: single events, all to one strict endpoint", to_hot, 0.4),
    ):
        ours = await concurrently(n, PRODUCERS, one)
        await rig.truncate()
        rows.append(
            Row(
                f"{what} (events/s)",
                f"{ours:,.0f}",
                f"{floor:,.0f} (plain outbox insert)",
                f"{ours / floor:.2f}",
                f">= {budget:.2f}",
                ours / floor >= budget,
            )
        )
        rows.append(
            Row(
                "  the same against both floors on these cores",
                f"{ours:,.0f}",
                f"{ceiling:,.0f} (HTTP + insert)",
                f"{ours / ceiling:.2f}",
                "",
                None,
            )
        )
    rows.append(
        Row(
            "HTTP floor: GET /healthz, same client and producers (requests/s)",
            f"{http:,.0f}",
            "",
            "",
            "",
            None,
        )
    )
    return rows


async def _raw_ingest(rig: Rig, tenant_id: str, events: list[dict[str, Any]]) -> None:
    """The batch baseline: the ingest statement itself, straight from asyncpg."""
    n = len(events)
    await rig.pool.fetch(
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
        rig.settings.tenant_max_fanout,  # the quota the API passes
        [0] * n,  # one request
    )


async def batch_ingest(rig: Rig, tenant: Tenant, n: int) -> Row:
    """POST /v1/events/batch with 1000 events each, 4 producers; vs the same SQL raw."""
    size, producers = 1000, 4
    batches = n // size

    async def raw(b: int) -> None:
        await _raw_ingest(rig, tenant.id, [_event(b * size + i) for i in range(size)])

    baseline = await concurrently(batches, producers, raw) * size
    await rig.truncate()

    async def post(b: int) -> None:
        await tenant.post_batch([_event(b * size + i) for i in range(size)])

    ours = await concurrently(batches, producers, post) * size
    await rig.truncate()
    return Row(
        "batch ingest, 1000 per request (events/s)",
        f"{ours:,.0f}",
        f"{baseline:,.0f}",
        f"{ours / baseline:.2f}",
        ">= 20,000 events/s",
        ours >= 20_000,
    )


async def e2e(rig: Rig, tenant: Tenant, n: int, *, batch: int = 1) -> tuple[Row, float]:
    """The end-to-end row and the rate it measured (deliveries/s). With ``batch`` > 1 the
    producers post ``/v1/events/batch`` requests of that many events (4 producers)."""
    baseline = await rig.raw_posts(n, LANES)

    async def one(i: int) -> None:
        await tenant.post(_event(i))

    async def many(b: int) -> None:
        await tenant.post_batch([_event(b * batch + i) for i in range(batch)])

    async with rig.worker():
        start = time.perf_counter()
        if batch == 1:
            await concurrently(n, PRODUCERS, one)
        else:
            n = n // batch * batch
            await concurrently(n // batch, 4, many)
        await rig.until_arrived(n)
        await rig.until_recorded(n)
        elapsed = time.perf_counter() - start
    ours = n / elapsed
    await rig.truncate()
    how = "single-event ingest" if batch == 1 else f"batch ingest of {batch}"
    budget = 0.3 if batch == 1 else 0.5
    row = Row(
        f"end to end, {how}, 64 strict endpoints (deliveries/s)",
        f"{ours:,.0f}",
        f"{baseline:,.0f}",
        f"{ours / baseline:.2f}",
        f">= {budget:.2f}",
        ours / baseline >= budget,
    )
    return row, ours


async def latency(
    rig: Rig,
    tenant: Tenant,
    rate: float,
    seconds: float,
    offered: str,
    *,
    busy: int = 0,
    logins: float = 0,
) -> Row:
    """POST -> arrival at a fixed offered ``rate`` (events/s) for ``seconds``: from just
    before the request is sent to the receiver's arrival. Meanwhile ``busy`` other processes
    each keep a core busy (a production host is rarely idle), and ``logins`` dashboard
    logins a second are tried."""
    count = max(50, int(rate * seconds))
    with _spinning(busy):
        async with rig.worker(), _logging_in(rig, logins):
            lat, ingest, achieved = await open_loop(rig, tenant, rate, count)
    await rig.truncate()
    p50, p95, p99 = (percentile(lat, p) for p in (50, 95, 99))
    i50, i99 = percentile(ingest, 50), percentile(ingest, 99)
    load = f", {busy} core(s) busy" if busy else f", {logins:g} logins/s" if logins else ""
    return Row(
        f"POST -> arrival at {rate:,.0f}/s offered{load} (ms)",
        f"p50 {p50:.1f} p95 {p95:.1f} p99 {p99:.1f} max {lat[-1]:.0f}",
        f"{offered}; sent {achieved:,.0f}/s; 202 p50 {i50:.1f} p99 {i99:.1f}",
        "-",
        "p50 < 10, p99 < 50",
        p50 < 10 and p99 < 50,
    )


async def open_loop(
    rig: Rig, tenant: Tenant, rate: float, count: int
) -> tuple[list[float], list[float], float]:
    """``count`` single-event ingests at a fixed offered ``rate`` (events/s), a worker
    running: POST -> arrival and POST -> 202 in ms, each sorted, and the rate achieved.
    Timing starts once the worker has delivered one event."""
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}  # when its 202 came back
    await rig.reset()
    await tenant.post(_event(0))
    await rig.until_arrived(1)
    await rig.reset()

    async def timed(i: int) -> None:
        before = time.time()
        event_id = await tenant.post(_event(i))
        sent[event_id] = before
        acked[event_id] = time.time()

    tasks = []
    start = time.perf_counter()
    for i in range(count):
        # open loop: a fixed offered rate, whatever the answers take
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(i)))
    await asyncio.gather(*tasks)
    achieved = count / (time.perf_counter() - start)
    got = (await rig.until_arrived(count)).arrivals
    lat = sorted((got[k] - t) * 1000 for k, t in sent.items())
    ingest = sorted((acked[k] - t) * 1000 for k, t in sent.items())
    return lat, ingest, achieved


@contextlib.contextmanager
def _spinning(cores: int) -> Iterator[None]:
    """``cores`` other processes, each keeping a core busy."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@contextlib.asynccontextmanager
async def _logging_in(rig: Rig, per_second: float) -> AsyncIterator[None]:
    """Dashboard logins at ``per_second`` meanwhile, each as a browser does it (the form,
    then the post) with a wrong password, each from its own address and email so the
    throttle lets every one reach the argon2 check."""
    if not per_second:
        yield
        return
    answered: collections.Counter[int] = collections.Counter()

    async def one(i: int) -> None:
        forwarded = {"x-forwarded-for": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"}
        jar = aiohttp.CookieJar(unsafe=True)  # the rig serves on 127.0.0.1
        async with aiohttp.ClientSession(headers=forwarded, cookie_jar=jar) as browser:
            async with browser.get(f"{rig.api}/login") as r:
                token = re.search(r'name="login_csrf" value="([^"]+)"', await r.text())
            assert token is not None, "no login token on the login page"
            fields = {"email": f"nobody{i}@bench.test", "password": "wrong", "login_csrf": token[1]}
            async with browser.post(f"{rig.api}/login", data=fields) as r:
                await r.read()
                answered[r.status] += 1

    started: set[asyncio.Task[None]] = set()

    async def burst() -> None:
        for i in itertools.count():
            started.add(asyncio.create_task(one(i)))
            await asyncio.sleep(1 / per_second)  # the offered rate, not a wait on anything

    runner = asyncio.create_task(burst())
    try:
        yield
    finally:
        runner.cancel()
        for task in started:
            task.cancel()  # logins still queued for the password check
        await asyncio.gather(runner, *started, return_exceptions=True)
        print(f"logins answered: {dict(answered)}", file=sys.stderr)
