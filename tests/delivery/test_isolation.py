"""Isolation between endpoints: in-flight caps and rate limits across workers, a hanging
endpoint that cannot hold a worker's slots, and lanes parked with a stale view."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from delivery.pacing import Candidate, admit, advance, allowance, burst, tenant_cap, tenant_rooms
from hookline.db import Pool
from hookline.settings import Settings
from tests.api.test_endpoints import make_endpoint
from tests.conftest import TenantKey, running_worker
from tests.receiver import Received, Receiver, wait_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# -- pure pacing ---------------------------------------------------------------------------


def test_a_fresh_endpoint_may_send_its_burst_then_one_per_interval() -> None:
    assert burst(10) == 1 and burst(100) == 10 and burst(1) == 1
    assert allowance(100, None, T0) == 10
    pace = advance(100, None, T0, 10)
    assert pace.tat == T0 + timedelta(seconds=0.1)
    assert pace.free_at == T0 + timedelta(seconds=0.01)  # one interval after the burst
    assert allowance(100, pace.tat, T0) == 0
    assert allowance(100, pace.tat, T0 + timedelta(seconds=0.01)) == 1
    assert allowance(100, pace.tat, T0 + timedelta(seconds=0.1)) == 10
    assert allowance(100, pace.tat, T0 + timedelta(hours=1)) == 10  # no saving up


def test_gcra_never_lets_more_than_rate_times_window_plus_burst_through() -> None:
    rate, now, tat, sent = 7, T0, None, []
    while now < T0 + timedelta(seconds=5):
        n = allowance(rate, tat, now)
        if n:
            sent += [now] * n
            tat = advance(rate, tat, now, n).tat
        now += timedelta(milliseconds=3)
    for start in sent:
        window = [t for t in sent if start <= t < start + timedelta(seconds=1)]
        assert len(window) <= rate + burst(rate)
    assert len(sent) >= 5 * rate - 1


def _candidate(lane: int, endpoint: str, tenant: str = "t", **kw: Any) -> Candidate:
    values: dict[str, Any] = {"active": True, "cap": 3, "busy": 0, "rate": None, "tat": None}
    values.update(kw)
    return Candidate(lane, endpoint, tenant, **values)


def test_admission_keeps_each_endpoint_within_its_caps() -> None:
    candidates = [_candidate(i, "a", busy=1) for i in range(5)]
    candidates += [_candidate(10 + i, "b") for i in range(5)]
    candidates += [_candidate(20, "c", active=False)]
    candidates += [_candidate(30 + i, "r", cap=10, rate=100) for i in range(3)]
    got = admit(
        candidates,
        want=100,
        now=T0,
        lane_batch=20,
        local_busy={"b": 1},
        local_cap=2,
        tenant_room={"t": 100},
    )
    assert list(got.lease) == [0, 1, 10, 30]  # a: 3 - 1 busy; b: local 2 - 1; r: one lane
    assert got.lease[30] == 10  # a rate of 100/s sends at most its burst at once
    assert got.park == [20]


def test_admission_gives_each_tenant_no_more_than_its_room_and_stops_at_want() -> None:
    candidates = [
        _candidate(1, "a1", "A"),
        _candidate(2, "b1", "B"),
        _candidate(3, "a2", "A"),
        _candidate(4, "b2", "B"),
        _candidate(5, "a3", "A"),
        _candidate(6, "c1", "C", active=False),
        _candidate(7, "b3", "B"),
    ]
    got = admit(
        candidates,
        want=3,
        now=T0,
        lane_batch=5,
        local_busy={},
        local_cap=10,
        tenant_room={"A": 1, "B": 5, "C": 5},
    )
    assert list(got.lease) == [1, 2, 4]  # A's room is one; three in all, in the order given
    assert got.park == [6]  # lanes to park are still found after `want` is reached


@pytest.mark.parametrize(
    ("busy", "rooms", "newcomer"),
    [
        ({}, {}, 128),  # an idle worker of 256: the first tenant may take half
        ({"A": 128}, {"A": 0}, 64),  # A at its cap; B may take half of what A leaves
        ({"A": 85, "B": 85}, {"A": 0, "B": 0}, 43),  # two settle at a third; a third free
        ({"A": 10}, {"A": 118}, 123),
        ({"A": 255}, {"A": -127}, 1),  # over its cap (slots were freed to others): waits
    ],
)
def test_a_tenant_may_take_a_share_of_the_slots_the_others_leave(
    busy: dict[str, int], rooms: dict[str, int], newcomer: int
) -> None:
    assert tenant_rooms(busy, 256, 0.5) == (rooms, newcomer)


def test_a_tenant_may_always_take_at_least_one_slot() -> None:
    assert tenant_cap(4, 4, 0.5) == 1 and tenant_cap(4, 0, 0.1) == 1


# -- through real workers ------------------------------------------------------------------


class Gauge:
    """Counts requests a receiver is answering at once, holding each for ``hold`` seconds."""

    def __init__(self, hold: float) -> None:
        self.hold, self.now, self.peak = hold, 0, 0

    async def __call__(self, got: Received) -> web.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(self.hold)  # a slow receiver, not a synchronisation
        finally:
            self.now -= 1
        return web.Response(status=204)


async def _ingest(api: httpx.AsyncClient, tenant: TenantKey, events: list[dict[str, Any]]) -> None:
    r = await api.post("/v1/events/batch", headers=tenant.headers, json={"events": events})
    assert r.status_code == 202, r.text


@contextlib.asynccontextmanager
async def two_workers(settings: Settings, pool: Pool, redis: Redis) -> AsyncIterator[None]:
    """Two delivery workers, as two processes would run them (each its own dispatcher)."""
    async with running_worker(settings, pool, redis), running_worker(settings, pool, redis):
        yield


@pytest.mark.slow
async def test_keyed_lanes_run_in_parallel_up_to_max_in_flight_across_workers(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    gauge = Gauge(0.15)
    receiver.respond = gauge
    await make_endpoint(api, tenant, receiver.url, ordering="keyed", max_in_flight=3)
    await _ingest(
        api,
        tenant,
        [{"type": "t", "data": {"i": i}, "ordering_key": f"k{i % 8}"} for i in range(24)],
    )
    async with two_workers(settings, pool, redis):
        await wait_for(lambda: len(receiver.requests) == 24, what="24 deliveries")
    assert gauge.peak == 3  # parallel, and never more than the endpoint allows


@pytest.mark.slow
async def test_none_ordering_is_capped_too(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    gauge = Gauge(0.1)
    receiver.respond = gauge
    endpoint = (await make_endpoint(api, tenant, receiver.url, ordering="none"))["id"]
    default_cap = (await api.get(f"/v1/endpoints/{endpoint}", headers=tenant.headers)).json()
    assert default_cap["max_in_flight"] == 10
    r = await api.patch(
        f"/v1/endpoints/{endpoint}", headers=tenant.headers, json={"max_in_flight": 2}
    )
    assert r.status_code == 200
    await _ingest(api, tenant, [{"type": "t", "data": {"i": i}} for i in range(12)])
    async with two_workers(settings, pool, redis):
        await wait_for(lambda: len(receiver.requests) == 12, what="12 deliveries")
    assert gauge.peak == 2


@pytest.mark.slow
async def test_a_rate_limit_holds_across_workers(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    rate, count = 10, 25
    fields: dict[str, Any] = {"ordering": "none", "rate_limit": rate, "max_in_flight": 50}
    await make_endpoint(api, tenant, receiver.url, **fields)
    await _ingest(api, tenant, [{"type": "t", "data": {"i": i}} for i in range(count)])
    async with two_workers(settings, pool, redis):
        await wait_for(lambda: len(receiver.requests) == count, what="every delivery")
    # when each attempt began, as recorded (arrival times add the receiver's and a busy
    # machine's jitter to what the pacing decided)
    began = sorted(
        r["started_at"].timestamp() for r in await pool.fetch("SELECT started_at FROM attempts")
    )
    assert len(began) == count
    for first in began:
        in_a_second = [t for t in began if first <= t < first + 1.0]
        # the rate, its burst, and one for a send that began late after its claim
        assert len(in_a_second) <= rate + burst(rate) + 1, "more than the rate in one second"
    # 25 at 10/s after a burst of one: 2.4 s from the first to the last (less a margin
    # for a first send that began late; unpaced, all 25 go within a tenth of a second)
    assert began[-1] - began[0] >= 0.8 * (count - burst(rate)) / rate


async def test_a_hanging_endpoint_holds_at_most_a_quarter_of_a_workers_slots(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    database_url: str,
    pool: Pool,
    redis: Redis,
    settings: Settings,
) -> None:
    release = asyncio.Event()
    hanging_now = 0
    hanging_peak = 0

    async def hang(got: Received) -> web.Response:
        nonlocal hanging_now, hanging_peak
        hanging_now += 1
        hanging_peak = max(hanging_peak, hanging_now)
        try:
            await release.wait()  # never answers until the test ends
        finally:
            hanging_now -= 1
        return web.Response(status=204)

    hanging, healthy = Receiver(respond=hang), Receiver()
    await hanging.start()
    await healthy.start()
    try:
        await make_endpoint(api, tenant, hanging.url, ordering="none", max_in_flight=100)
        await _ingest(api, tenant, [{"type": "slow", "data": {"i": i}} for i in range(20)])
        await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "d"})
        r = await api.post(
            "/v1/endpoints",
            headers=tenant.headers,
            json={"subscriber": "d", "url": healthy.url, "event_types": ["fast"]},
        )
        assert r.status_code == 201
        await _ingest(api, tenant, [{"type": "fast", "data": {"i": i}} for i in range(30)])
        narrow = settings.model_copy(update={"worker_concurrency": 8, "delivery_timeout": 20.0})
        started = time.monotonic()
        async with running_worker(narrow, pool, redis):
            await wait_for(lambda: len(healthy.requests) == 30, what="the healthy endpoint")
            took = time.monotonic() - started
            assert hanging_peak == 2  # 8 slots / 4: the other six keep serving the rest
            release.set()
        assert took < 10  # long before a single hanging attempt's 20 s deadline
    finally:
        release.set()
        await hanging.stop()
        await healthy.stop()


async def test_a_lane_parked_with_a_stale_view_of_a_resumed_endpoint_is_scheduled_again(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    await make_endpoint(api, tenant, receiver.url)
    await _ingest(api, tenant, [{"type": "t", "data": {}}])
    # what a claim that saw the endpoint still paused leaves behind after a resume
    await pool.execute("UPDATE lanes SET ready_at = NULL")
    async with running_worker(settings, pool, redis):
        await wait_for(lambda: len(receiver.requests) == 1, what="the stuck delivery")
