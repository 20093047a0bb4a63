"""Fairness between tenants, on real worker processes: one tenant's flood of deliveries and
another's hundreds of hanging receivers do not delay a third tenant's deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from hookline.db import Pool
from hookline.settings import Settings
from hookline.tenants import create_tenant
from tests import processes
from tests.conftest import TenantKey
from tests.receiver import Received, Receiver, wait_for

pytestmark = pytest.mark.slow


async def _tenant(pool: Pool, name: str) -> TenantKey:
    created, key = await create_tenant(pool, name)
    return TenantKey(created.id, key)


async def _endpoints(
    api: httpx.AsyncClient, tenant: TenantKey, url: str, count: int, **fields: object
) -> None:
    r = await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "s"})
    assert r.status_code == 201, r.text
    for _ in range(count):
        r = await api.post(
            "/v1/endpoints",
            headers=tenant.headers,
            json={"subscriber": "s", "url": url, **fields},
        )
        assert r.status_code == 201, r.text


async def _batch(api: httpx.AsyncClient, tenant: TenantKey, n: int) -> None:
    events = [{"type": "flood", "data": {"n": i}} for i in range(n)]
    r = await api.post("/v1/events/batch", headers=tenant.headers, json={"events": events})
    assert r.status_code == 202, r.text


@contextlib.asynccontextmanager
async def _receiving(respond: object = None) -> AsyncIterator[Receiver]:
    server = Receiver()
    if respond is not None:
        server.respond = respond  # type: ignore[assignment]
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _finished(pool: Pool, count: int) -> bool:
    done = await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
    return bool(done == count)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def test_a_flood_and_hanging_receivers_of_others_leave_a_tenant_its_latency(
    api: httpx.AsyncClient, pool: Pool, settings: Settings
) -> None:
    released = asyncio.Event()
    hanging_now = 0

    async def hang(got: Received) -> web.Response:
        nonlocal hanging_now
        hanging_now += 1
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await released.wait()  # holds the request past the worker's deadline
        finally:
            hanging_now -= 1
        return web.Response(status=204)

    async def slowish(got: Received) -> web.Response:
        await asyncio.sleep(0.02)  # a receiver that takes 20 ms: the flood keeps slots busy
        return web.Response(status=204)

    # two workers of 40 slots each; an attempt gives up after 8 s
    narrow = settings.model_copy(update={"worker_concurrency": 40, "delivery_timeout": 8.0})
    hanger, flooder, quiet = [await _tenant(pool, n) for n in ("Hangs", "Floods", "Quiet")]
    async with (
        _receiving(hang) as hanging,
        _receiving(slowish) as busy,
        _receiving() as calm,
    ):
        # 100 endpoints that never answer in time, each allowed 10 requests in flight
        await _endpoints(api, hanger, hanging.url, 100, ordering="none", max_in_flight=10)
        await _endpoints(api, flooder, busy.url, 1, ordering="none", max_in_flight=100)
        await _endpoints(api, quiet, calm.url, 1, payload="full")
        with processes.workers(narrow, 2):
            await _batch(api, hanger, 100)  # 10,000 deliveries that hang
            for _ in range(10):
                await _batch(api, flooder, 1000)  # 10,000 more, behind them
            await wait_for(lambda: hanging_now >= 20, what="the hanging receivers to fill up")

            sent: dict[str, float] = {}
            for n in range(60):
                r = await api.post(
                    "/v1/events",
                    headers=quiet.headers,
                    json={"type": "quiet", "data": {"n": n}},
                )
                assert r.status_code == 202, r.text
                sent[r.json()["id"]] = time.monotonic()
                await asyncio.sleep(0.05)  # a producer's pace (20 events/s), not a wait
            await wait_for(lambda: len(calm.requests) >= len(sent), timeout=30)
            still_hanging, flood_left = hanging_now, 10_000 - len(busy.requests)
            released.set()

        arrived = {r.headers["webhook-id"]: r.at for r in calm.requests}
        latencies = [arrived[event_id] - at for event_id, at in sent.items()]
        p99 = _p99(latencies)
        print(
            f"\nfairness: quiet tenant's 60 deliveries p50 {sorted(latencies)[30] * 1000:.0f} ms,"
            f" p99 {p99 * 1000:.0f} ms; meanwhile {still_hanging} requests hanging,"
            f" {flood_left} flood deliveries still queued"
        )
        # the others were still at it when the quiet tenant's last delivery arrived
        assert still_hanging >= 20 and flood_left > 0
        assert p99 < 2.0


async def test_a_saturated_endpoints_backlog_does_not_hide_the_tenants_other_lanes(
    api: httpx.AsyncClient, pool: Pool, settings: Settings, tenant: TenantKey
) -> None:
    """Claims look at a window of each tenant's due lanes; lanes of an endpoint that can
    take no more are deferred out of it, so a backlog far longer than the window cannot
    keep the tenant's other endpoints waiting behind it."""
    released = asyncio.Event()

    async def hold(got: Received) -> web.Response:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await released.wait()  # one request at a time, for as long as the test runs
        return web.Response(status=204)

    # a window of 2 * 5 lanes; the slow endpoint has 60 lanes due, ahead of the quick one's
    small = settings.model_copy(update={"claim_batch": 5, "delivery_timeout": 20.0})
    async with _receiving(hold) as slow, _receiving() as quick:
        await _endpoints(api, tenant, slow.url, 1, ordering="none", max_in_flight=1)
        r = await api.post(
            "/v1/endpoints",
            headers=tenant.headers,
            json={"subscriber": "s", "url": quick.url, "event_types": ["quick"]},
        )
        assert r.status_code == 201, r.text
        with processes.workers(small, 1):
            await _batch(api, tenant, 60)
            await wait_for(lambda: len(slow.requests) == 1, what="the slow endpoint to hang")
            started = time.monotonic()
            r = await api.post(
                "/v1/events", headers=tenant.headers, json={"type": "quick", "data": {}}
            )
            assert r.status_code == 202, r.text
            await wait_for(lambda: len(quick.requests) == 1, timeout=10)
            took = time.monotonic() - started
            released.set()
            # stopping the worker blocks this loop, and the receivers with it: let the
            # slow endpoint's backlog drain first, or its attempt in flight would hang
            await wait_for(lambda: len(slow.requests) == 61, what="the backlog to drain")
            await wait_for(lambda: _finished(pool, 62), what="every delivery recorded")
    assert took < 2.0, f"the quick endpoint waited {took:.1f} s behind the backlog"
