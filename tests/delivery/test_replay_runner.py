"""Replay jobs run by real workers: what a disabled endpoint missed arrives in order and
signed; the rate holds while live deliveries flow; pause holds, resume finishes, cancel
ends; a worker that dies or stops mid-job leaves it to another, with nothing queued twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from delivery import replayer
from delivery.replayer import pace
from hookline.db import Pool
from hookline.settings import Settings
from tests.api.test_replays import (
    deliveries,
    dry_run,
    finished,
    ingest,
    make_endpoint,
    replay_now,
    start,
)
from tests.conftest import TenantKey, running_worker
from tests.receiver import Received, Receiver, wait_for

pytestmark = pytest.mark.slow

Body = dict[str, Any]


@pytest.mark.parametrize(
    ("rate", "chunk", "interval"),
    [(1, 1, 1.0), (3, 1, 1 / 3), (4, 1, 0.25), (10, 3, 0.3), (50, 13, 0.26), (1000, 250, 0.25)],
)
def test_pace_queues_the_rate_in_chunks_a_quarter_second_apart_or_more(
    rate: int, chunk: int, interval: float
) -> None:
    got = pace(rate)
    assert got[0] == chunk and got[1] == pytest.approx(interval)
    assert got[0] / got[1] == pytest.approx(rate)


async def _dead_letters(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
    n: int,
    **fields: Any,
) -> str:
    """An endpoint with ``n`` failed deliveries (two attempts each); the receiver is then
    fixed. Returns the endpoint's id."""
    receiver.respond = lambda got: web.Response(status=500)
    endpoint = await make_endpoint(api, tenant, receiver.url, ordering="none", **fields)
    r = await api.post(
        "/v1/events/batch",
        headers=tenant.headers,
        json={"events": [{"type": "t", "data": {"n": i}} for i in range(n)]},
    )
    assert r.status_code == 202, r.text
    async with running_worker(settings, pool, redis):

        async def all_failed() -> bool:
            return len(await deliveries(api, tenant, status="failed")) == n

        await wait_for(all_failed, what=f"{n} dead letters")
    receiver.respond = None
    receiver.requests.clear()
    return endpoint


async def test_what_a_disabled_endpoint_missed_arrives_in_order_and_signed(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    h = tenant.headers
    gone = True
    receiver.respond = lambda got: web.Response(status=410 if gone else 204)
    endpoint = await make_endpoint(api, tenant, receiver.url, payload="full")
    secret = (await api.get(f"/v1/endpoints/{endpoint}/secret", headers=h)).json()["key"]
    async with running_worker(settings, pool, redis):
        first = await ingest(api, tenant, "t", subject="order-0")

        async def disabled() -> bool:
            r = await api.get(f"/v1/endpoints/{endpoint}", headers=h)
            return bool(r.json()["status"] == "disabled")

        await wait_for(disabled, what="410 Gone to disable the endpoint")
        missed = [await ingest(api, tenant, "t", subject=f"order-{i}") for i in range(1, 6)]
        assert [e["deliveries"] for e in missed] == [0] * 5  # nobody to deliver to
        gone = False
        r = await api.patch(f"/v1/endpoints/{endpoint}", headers=h, json={"status": "active"})
        assert r.status_code == 200, r.text
        offer = r.json()["replay_offer"]
        assert offer["replay"] == f"/v1/endpoints/{endpoint}/replay"
        live = await ingest(api, tenant, "t", subject="order-6")  # reaches it as usual
        await wait_for(lambda: len(receiver.requests) == 2, what="the live event")

        body = {"since": offer["since"], "until": offer["until"], "missed": True}
        assert await dry_run(api, tenant, offer["replay"], {**body, "statuses": []}) == 5
        replay = await start(api, tenant, offer["replay"], {**body, "statuses": []})
        assert replay["total"] == 5
        done = await finished(api, tenant, replay["id"])
        assert done["queued"] == 5
        await wait_for(lambda: len(receiver.requests) == 7, what="the missed events")
        # nothing more: a second replay finds nothing missed
        again = await dry_run(api, tenant, offer["replay"], {**body, "statuses": []})
        assert again == 0

    got = receiver.requests[2:]
    assert [r.headers["webhook-id"] for r in got] == [e["id"] for e in missed]
    # numbered after what the lane had (the first event and the live one), one by one
    assert [int(r.headers["hookline-sequence"]) for r in got] == [3, 4, 5, 6, 7]
    assert receiver.requests[1].headers["webhook-id"] == live["id"]
    for request in got:
        StandardWebhook(secret).verify(request.body, request.headers)
        SvixWebhook(secret).verify(request.body, request.headers)
        assert request.headers["hookline-attempt"] == "1"
    assert [d["status"] for d in await deliveries(api, tenant)] == ["succeeded"] * 6 + ["failed"]
    assert first["id"] not in {r.headers["webhook-id"] for r in got}


async def test_the_rate_holds_while_live_deliveries_keep_flowing(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    endpoint = await _dead_letters(
        api, tenant, receiver, settings, pool, redis, 30, event_types=["t"]
    )
    live_receiver = Receiver()
    await live_receiver.start()
    try:
        await make_endpoint(api, tenant, live_receiver.url, event_types=["live"])
        async with running_worker(settings, pool, redis):
            replay = await start(api, tenant, f"/v1/endpoints/{endpoint}/replay", {"rate": 10})
            await wait_for(lambda: len(receiver.requests) > 0, what="the replay to begin")
            latencies = []
            for i in range(3):
                sent = time.monotonic()
                await ingest(api, tenant, "live")
                await wait_for(_more_than(live_receiver, i), what="a live event")
                latencies.append(live_receiver.requests[-1].at - sent)
            # the live events went through while the replay was still queueing
            assert (await replay_now(api, tenant, replay["id"]))["state"] == "running"
            assert max(latencies) < 1.0, latencies
            await finished(api, tenant, replay["id"])
            await wait_for(lambda: len(receiver.requests) == 30, what="the whole replay")
    finally:
        await live_receiver.stop()
    # when each delivery was queued (a chunk sets next_attempt_at to its own time; the
    # success that followed keeps it): what the runner paced, apart from how fast the
    # worker then sent them on a busy machine
    queued = sorted(
        r["next_attempt_at"].timestamp()
        for r in await pool.fetch(
            "SELECT next_attempt_at FROM deliveries WHERE endpoint_id = $1", endpoint
        )
    )
    assert len(queued) == 30
    # 10 chunks of 3, 0.3 s apart: 2.7 s from the first to the last
    assert queued[-1] - queued[0] >= 2.0, queued[-1] - queued[0]
    # and in no second more than the rate plus one chunk (a late chunk may be followed
    # closely by the next, never by a burst)
    for first in queued:
        assert sum(first <= t < first + 1.0 for t in queued) <= 10 + 3


def _more_than(receiver: Receiver, n: int) -> Callable[[], bool]:
    return lambda: len(receiver.requests) > n


async def _stays(api: httpx.AsyncClient, tenant: TenantKey, replay_id: str, queued: int) -> None:
    """Fail unless the replay's ``queued`` stays at ``queued`` for 1.5 s."""

    async def moved() -> bool:
        return bool((await replay_now(api, tenant, replay_id))["queued"] != queued)

    with pytest.raises(AssertionError, match="timed out"):
        await wait_for(moved, timeout=1.5, what=f"replay {replay_id} to move")


async def test_pause_holds_progress_resume_finishes_and_cancel_ends(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    h = tenant.headers
    endpoint = await _dead_letters(api, tenant, receiver, settings, pool, redis, 12)
    path = f"/v1/endpoints/{endpoint}/replay"
    async with running_worker(settings, pool, redis):
        replay = await start(api, tenant, path, {"rate": 4})
        rid = replay["id"]

        async def queued_at_least(n: int) -> bool:
            return bool((await replay_now(api, tenant, rid))["queued"] >= n)

        await wait_for(lambda: queued_at_least(2), what="the replay to begin")
        r = await api.post(f"/v1/replays/{rid}/pause", headers=h)
        assert r.status_code == 200 and r.json()["state"] == "paused", r.text
        held = (await replay_now(api, tenant, rid))["queued"]
        assert held < 12
        # a chunk is due every 0.25 s: over 1.5 s a running replay would have moved
        await _stays(api, tenant, rid, held)
        await wait_for(lambda: len(receiver.requests) == held, what="what was queued")

        r = await api.post(f"/v1/replays/{rid}/resume", headers=h)
        assert r.status_code == 200 and r.json()["state"] == "running", r.text
        done = await finished(api, tenant, rid)
        assert done["queued"] == 12
        await wait_for(lambda: len(receiver.requests) == 12, what="the rest")

        # cancel: a new replay of the same deliveries (now succeeded) ends where it is
        replay = await start(api, tenant, path, {"statuses": ["succeeded"], "rate": 2})
        rid = replay["id"]
        await wait_for(lambda: queued_at_least(1), what="the second replay to begin")
        r = await api.post(f"/v1/replays/{rid}/cancel", headers=h)
        assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
        stopped = r.json()["queued"]
        await _stays(api, tenant, rid, stopped)
        await wait_for(lambda: len(receiver.requests) == 12 + stopped, what="the queued ones")
    final = await replay_now(api, tenant, rid)
    assert final["state"] == "cancelled" and final["queued"] == stopped < 12
    r = await api.post(f"/v1/replays/{rid}/resume", headers=h)
    assert r.status_code == 409, r.text


def _once_each(received: list[Received]) -> Counter[str]:
    return Counter(r.headers["webhook-id"] for r in received)


async def test_a_dead_workers_job_is_taken_over_without_queueing_anything_twice(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    endpoint = await _dead_letters(api, tenant, receiver, settings, pool, redis, 10)
    replay = await start(api, tenant, f"/v1/endpoints/{endpoint}/replay", {"rate": 1000})
    schedule = settings.retry_schedule
    # a worker leases the job, queues one chunk, and dies before giving the lease back
    [job] = await replayer.lease_replays(pool, 1, 0.5)
    assert await replayer.run_chunk(pool, job, 4, 0.5, schedule) == replayer.Chunk(4, True)
    assert (await replay_now(api, tenant, replay["id"]))["queued"] == 4
    assert await replayer.lease_replays(pool, 1, 0.5) == []  # still held
    started = time.monotonic()
    async with running_worker(settings, pool, redis):
        done = await finished(api, tenant, replay["id"])
        await wait_for(lambda: len(receiver.requests) == 10, what="every delivery")
    assert time.monotonic() - started >= 0.3  # not before the lease ran out
    assert done["queued"] == 10
    # the dead worker comes back: the job is no longer its to run, and it changes nothing
    assert await replayer.run_chunk(pool, job, 4, 0.5, schedule) == replayer.Chunk(0, False)
    assert (await replay_now(api, tenant, replay["id"]))["queued"] == 10
    assert set(_once_each(receiver.requests).values()) == {1}
    assert {d["attempts"] for d in await deliveries(api, tenant)} == {3}


async def test_a_worker_stopped_mid_job_gives_it_back_and_another_finishes_it(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    endpoint = await _dead_letters(api, tenant, receiver, settings, pool, redis, 12)
    replay = await start(api, tenant, f"/v1/endpoints/{endpoint}/replay", {"rate": 4})
    rid = replay["id"]
    async with running_worker(settings, pool, redis):

        async def begun() -> bool:
            return bool((await replay_now(api, tenant, rid))["queued"] >= 2)

        await wait_for(begun, what="the replay to begin")
    stopped_at = await replay_now(api, tenant, rid)
    assert stopped_at["state"] == "running" and stopped_at["queued"] < 12
    # given back at the stop: the next worker takes it at once, not after a lease
    [job] = await replayer.lease_replays(pool, 1, 5.0)
    assert job.after_id is not None
    await replayer.release_replay(pool, job)
    async with running_worker(settings, pool, redis):
        done = await finished(api, tenant, rid)
        await wait_for(lambda: len(receiver.requests) == 12, what="every delivery")
    assert done["queued"] == 12
    assert set(_once_each(receiver.requests).values()) == {1}
    assert {d["attempts"] for d in await deliveries(api, tenant)} == {3}
