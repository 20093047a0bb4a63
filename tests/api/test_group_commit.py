"""Group commit: concurrent single-event ingests share one statement, each judged alone."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from hookline.db import Pool
from hookline.errors import (
    TAKEN,
    UNKNOWN,
    Conflict,
    HooklineError,
    InvalidInput,
    Problem,
    QuotaExceeded,
)
from hookline.events import Accepted
from hookline.group_commit import GroupCommit
from tests.api.test_endpoints import make_endpoint
from tests.conftest import TenantKey
from tests.receiver import wait_for


async def _answers(group: GroupCommit, tenant_id: str, events: list[dict[str, Any]]) -> list[Any]:
    return await asyncio.gather(
        *(group.ingest(tenant_id, e) for e in events), return_exceptions=True
    )


def _event(**fields: Any) -> dict[str, Any]:
    return {"type": "order.created", "data": {}, **fields}


async def test_concurrent_events_share_one_statement_and_each_is_committed(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    await make_endpoint(api, tenant, "http://127.0.0.1:9/hook", ordering="strict")
    rings: list[int] = []
    group = GroupCommit(pool, max_fanout=0, committed=lambda: rings.append(1))
    answers = await _answers(group, tenant.id, [_event(subject=f"o{i}") for i in range(40)])
    assert group.statements == 1 and group.largest == 40
    assert len(rings) == 1  # the workers' doorbell, once for the group
    r = await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "lonely"})
    assert r.status_code == 201
    assert (await group.ingest(tenant.id, _event(subscriber="lonely"))).deliveries == 0
    assert len(rings) == 1  # nothing to deliver: nobody to wake
    assert all(a.deliveries == 1 for a in answers)
    rows = await pool.fetch(
        "SELECT ev.id, ev.subject, d.seq FROM events ev JOIN deliveries d ON d.event_id = ev.id"
    )
    by_id = {r["id"]: r for r in rows}
    # committed, and in the lane in the order the requests came
    assert [by_id[a.id]["subject"] for a in answers] == [f"o{i}" for i in range(40)]
    assert [by_id[a.id]["seq"] for a in answers] == list(range(1, 41))


async def test_a_lone_event_is_written_at_once_and_later_ones_group_behind_it(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    await make_endpoint(api, tenant, "http://127.0.0.1:9/hook", ordering="strict")
    group = GroupCommit(pool, max_fanout=0)
    await group.ingest(tenant.id, _event())  # nothing to wait for: one statement, now
    assert group.statements == 1 and group.largest == 1
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT * FROM lane_tails FOR UPDATE")  # the next statement waits
        first = asyncio.ensure_future(group.ingest(tenant.id, _event()))
        await _blocked(pool)
        later = asyncio.gather(*(group.ingest(tenant.id, _event()) for _ in range(10)))
        await asyncio.sleep(0)  # let them queue (they could not be written anyway)
    await first
    await later
    # the ten that came while the second statement ran went in the third, together
    assert group.statements == 3 and group.largest == 10
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 12


async def test_one_events_refusal_leaves_its_neighbours_written(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    for i in range(3):
        await make_endpoint(api, tenant, f"http://127.0.0.1:9/h{i}")
    await make_endpoint(api, tenant, "http://127.0.0.1:9/big", uid="big", event_types=["big"])
    await make_endpoint(api, tenant, "http://127.0.0.1:9/big2", uid="big", event_types=["big"])
    group = GroupCommit(pool, max_fanout=4)
    taken = await group.ingest(tenant.id, _event(id="order-1"))
    events = [
        _event(subject="a"),
        _event(subscriber="nobody"),  # unknown subscriber
        _event(subject="b"),
        _event(id="order-1"),  # producer id taken by an earlier request
        _event(subject="c", id="order-2"),
        _event(id="order-2"),  # taken by its neighbour in the same statement
        _event(type="big", data={}),  # 3 broadcast endpoints + 2 for "big": over 4
        _event(subject="d"),
    ]
    statements = group.statements
    answers = await _answers(group, tenant.id, events)
    assert group.statements == statements + 1  # one statement for all of them
    kinds = [type(a) for a in answers]
    assert kinds == [
        Accepted,
        InvalidInput,
        Accepted,
        Conflict,
        Accepted,
        Conflict,
        QuotaExceeded,
        Accepted,
    ]
    unknown, dup, over = answers[1], answers[3], answers[6]
    assert isinstance(unknown, HooklineError) and unknown.problems == (
        Problem(("subscriber",), "no subscriber 'nobody'", UNKNOWN),
    )
    assert isinstance(dup, HooklineError) and dup.problems == (
        Problem(("id",), "event id 'order-1' is taken", TAKEN),
    )
    assert isinstance(over, QuotaExceeded) and "more than 4 deliveries" in over.detail
    written = {r["id"] for r in await pool.fetch("SELECT id FROM events")}
    assert written == {taken.id, *(a.id for a in answers if isinstance(a, Accepted))}
    assert all(a.deliveries == 3 for a in answers if isinstance(a, Accepted))
    # the refused events left nothing behind: no delivery, no lane
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 3 * 5
    assert await pool.fetchval("SELECT count(*) FROM lanes") == 3  # strict: one each


async def test_a_subscriber_deleted_mid_statement_costs_the_group_one_retry(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    """The statement fails on the foreign key when a subscriber goes between its read and
    its commit; tried again, the deleted one is an unknown subscriber and the rest land."""
    await make_endpoint(api, tenant, "http://127.0.0.1:9/h", uid="stays")
    r = await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "goes"})
    assert r.status_code == 201
    group = GroupCommit(pool, max_fanout=0)
    async with pool.acquire() as conn, conn.transaction():
        # hold the subscriber's row: the ingest reads it, then waits on its key share lock
        await conn.execute("DELETE FROM subscribers WHERE uid = 'goes'")
        answers = asyncio.gather(
            group.ingest(tenant.id, _event(subscriber="goes")),
            group.ingest(tenant.id, _event(subscriber="stays")),
            return_exceptions=True,
        )
        await _blocked(pool)
    done = await answers
    assert isinstance(done[0], InvalidInput) and not isinstance(done[1], BaseException)
    assert group.statements == 1  # counted once, tried twice
    assert await pool.fetchval("SELECT count(*) FROM events") == 1


async def _blocked(pool: Pool) -> None:
    """Until some statement waits on a lock."""

    async def waiting() -> bool:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        return bool(await pool.fetchval(query))

    await wait_for(waiting, timeout=5, what="the ingest to wait on a lock")


async def test_a_hot_strict_lane_fed_by_32_producers_keeps_each_producers_order(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    """32 producers each send 25 events one at a time, each waiting for its 202, all to
    one strict endpoint: the lane's sequence has no gap, and within each producer it
    follows the order of its 202s."""
    await make_endpoint(api, tenant, "http://127.0.0.1:9/hot", ordering="strict")
    sent = await send_from_producers(api, tenant, producers=32, each=25)
    seq = {
        r["event_id"]: r["seq"] for r in await pool.fetch("SELECT event_id, seq FROM deliveries")
    }
    assert sorted(seq.values()) == list(range(1, 32 * 25 + 1))
    for ids in sent.values():
        numbers = [seq[i] for i in ids]
        assert numbers == sorted(numbers)
    statements = api_group(api).statements
    print(f"\n800 events from 32 producers in {statements} statements")
    assert 0 < statements < 800  # they went through the group commit, and shared


async def send_from_producers(
    api: httpx.AsyncClient, tenant: TenantKey, *, producers: int, each: int
) -> dict[int, list[str]]:
    """``producers`` producers at once, each sending ``each`` events one at a time and
    waiting for its 202; the event ids each got, in the order of its 202s."""
    sent: dict[int, list[str]] = {p: [] for p in range(producers)}

    async def producer(p: int) -> None:
        for i in range(each):
            body = {"type": "order.created", "subject": f"p{p}-{i}", "data": {"i": i}}
            r = await api.post("/v1/events", headers=tenant.headers, json=body)
            assert r.status_code == 202, r.text
            sent[p].append(r.json()["id"])

    await asyncio.gather(*(producer(p) for p in range(producers)))
    return sent


def api_group(api: httpx.AsyncClient) -> GroupCommit:
    transport = api._transport
    assert isinstance(transport, httpx.ASGITransport)
    group: GroupCommit = transport.app.state.services.ingest  # type: ignore[attr-defined]
    return group
