"""Lanes: ingest and the worker no longer wait on each other, and no lane is left with work
and no due time (the races hookline/lanes.py describes, each played out for real)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from delivery.queries import SQL
from hookline import lanes
from hookline.db import Pool
from hookline.events import write_events
from hookline.settings import Settings
from tests.api.test_endpoints import make_endpoint
from tests.api.test_group_commit import send_from_producers
from tests.conftest import TenantKey, running_worker
from tests.receiver import Receiver, wait_for

_EVENT = {"type": "order.created", "data": {}}


async def _lane(pool: Pool, endpoint_id: str) -> dict[str, Any]:
    found = await pool.fetchrow(
        "SELECT id, ready_at, lease_until, lease_no FROM lanes WHERE endpoint_id = $1",
        endpoint_id,
    )
    assert found is not None
    return dict(found)


async def _lease(pool: Pool, lane_id: int) -> int:
    """Hold the lane as a worker's claim does (lease_lanes), for a minute."""
    lease_no: int = await pool.fetchval(
        """UPDATE lanes SET lease_no = lease_no + 1, lease_until = now() + interval '1 minute',
                            ready_at = now() + interval '1 minute'
           WHERE id = $1 RETURNING lease_no""",
        lane_id,
    )
    return lease_no


async def _send_first(pool: Pool, lane_id: int) -> None:
    """The head was sent and succeeded (as move_deliveries records it)."""
    await pool.execute(
        "UPDATE deliveries SET status = 'succeeded' WHERE lane_id = $1 AND seq = 1", lane_id
    )


async def _waiting_on_a_lock(pool: Pool) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT count(*) > 0 FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


async def test_an_ingest_that_saw_its_lane_busy_looks_again_after_its_commit(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    """The worker empties and releases a lane while an ingest into it has begun (its
    statement saw the lane leased, so it does not schedule it) and has not committed: after
    the ingest's commit the lane has work and no due time, until the ingest's own look."""
    endpoint = (await make_endpoint(api, tenant, "http://127.0.0.1:9/a", ordering="strict"))["id"]
    await write_events(pool, tenant.id, [_EVENT], [0], max_fanout=0)
    lane = await _lane(pool, endpoint)
    await _lease(pool, lane["id"])
    unsure: list[int] = []
    async with pool.acquire() as blocker, blocker.transaction():
        # the ingest statement takes its snapshot, then waits here for the lane's tail
        await blocker.execute("SELECT 1 FROM lane_tails FOR UPDATE")
        ingest = asyncio.ensure_future(
            write_events(pool, tenant.id, [_EVENT], [0], max_fanout=0, unsure=unsure)
        )
        await wait_for(lambda: _waiting_on_a_lock(pool), timeout=5, what="the ingest to wait")
        # meanwhile the worker records the head's success and releases the lane, empty
        await _send_first(pool, lane["id"])
        await pool.execute(
            "UPDATE lanes SET lease_until = NULL, ready_at = NULL WHERE id = $1", lane["id"]
        )
    await ingest
    assert unsure == [lane["id"]]  # the statement could not schedule it...
    assert (await _lane(pool, endpoint))["ready_at"] is None  # ...and nobody else did
    assert await lanes.wake(pool, unsure) == 1
    assert (await _lane(pool, endpoint))["ready_at"] is not None


async def test_a_release_that_empties_a_lane_during_an_ingest_looks_again_after_its_commit(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    """The other order: the worker's recording transaction releases the lane empty (it
    cannot see the ingest's delivery), the ingest commits, then the recording commits.
    release_lanes names the lane, and the worker's look after its commit schedules it.
    The ingest meanwhile does not wait for the recording's lock on the lane."""
    endpoint = (await make_endpoint(api, tenant, "http://127.0.0.1:9/a", ordering="strict"))["id"]
    await write_events(pool, tenant.id, [_EVENT], [0], max_fanout=0)
    lane = await _lane(pool, endpoint)
    lease_no = await _lease(pool, lane["id"])
    async with pool.acquire() as recording:
        async with recording.transaction():
            await lanes.lock(recording, [lane["id"]])
            await recording.execute(
                "UPDATE deliveries SET status = 'succeeded' WHERE lane_id = $1", lane["id"]
            )
            empty = await recording.fetch(SQL["release_lanes"], [lane["id"]], [lease_no])
            assert [r["id"] for r in empty] == [lane["id"]]
            # the lane is locked by the recording: the ingest goes through all the same
            await asyncio.wait_for(
                write_events(pool, tenant.id, [_EVENT], [0], max_fanout=0), timeout=5
            )
        # committed after the ingest, which saw the lane leased: no due time, work to do
        assert (await _lane(pool, endpoint))["ready_at"] is None
        assert await lanes.wake(pool, [r["id"] for r in empty]) == 1
    assert (await _lane(pool, endpoint))["ready_at"] is not None


async def test_the_sweep_schedules_a_lane_a_dead_process_left_without_a_due_time(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    stranded = (await make_endpoint(api, tenant, "http://127.0.0.1:9/a", ordering="strict"))["id"]
    paused = (await make_endpoint(api, tenant, "http://127.0.0.1:9/b", ordering="strict"))["id"]
    await write_events(pool, tenant.id, [_EVENT], [0], max_fanout=0)
    await pool.execute("UPDATE lanes SET ready_at = NULL")  # as a death mid-race leaves them
    pause = {"status": "paused"}
    r = await api.patch(f"/v1/endpoints/{paused}", headers=tenant.headers, json=pause)
    assert r.status_code == 200, r.text
    assert await lanes.wake_stranded(pool, 120) == 1
    assert (await _lane(pool, stranded))["ready_at"] is not None
    assert (await _lane(pool, paused))["ready_at"] is None  # parked on purpose: resume wakes it
    assert await lanes.wake_stranded(pool, 120) == 0  # nothing left to find


@pytest.mark.slow
async def test_a_hot_strict_lane_fed_by_32_producers_delivers_everything_in_order(
    api: httpx.AsyncClient,
    pool: Pool,
    redis: Redis,
    settings: Settings,
    tenant: TenantKey,
    receiver: Receiver,
) -> None:
    """32 producers each send 25 events one at a time to one strict endpoint while a worker
    delivers them: every event arrives once, in sequence order without a gap, each
    producer's in the order of its 202s. A lane stranded by a race would wait for the
    half-minute sweep, past this test's deadline."""
    await make_endpoint(api, tenant, receiver.url, ordering="strict")
    async with running_worker(settings, pool, redis):
        sent = await send_from_producers(api, tenant, producers=32, each=25)
        await wait_for(lambda: len(receiver.requests) >= 800, timeout=20, what="800 deliveries")
    sequence = [int(r.headers["hookline-sequence"]) for r in receiver.requests]
    assert sequence == list(range(1, 801))
    arrived = [r.headers["webhook-id"] for r in receiver.requests]
    position = {event: n for n, event in enumerate(arrived)}
    assert len(position) == 800
    for events in sent.values():
        places = [position[e] for e in events]
        assert places == sorted(places)
