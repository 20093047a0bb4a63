"""Guarantees proven on real worker processes: ordering under concurrency, a flushed
Redis, a worker SIGKILLed mid-request."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections import defaultdict
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from hookline.settings import Settings
from tests import processes
from tests.conftest import TenantKey
from tests.receiver import Received, Receiver, wait_for

pytestmark = pytest.mark.slow


async def _endpoint(api: httpx.AsyncClient, tenant: TenantKey, url: str) -> str:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    r = await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={"subscriber": "c", "url": url, "payload": "full"},
    )
    assert r.status_code == 201, r.text
    endpoint_id: str = r.json()["id"]
    return endpoint_id


async def _statuses(api: httpx.AsyncClient, tenant: TenantKey) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/v1/deliveries", params=params, headers=tenant.headers)).json()
        for d in page["data"]:
            counts[d["status"]] += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return counts


async def test_strict_order_with_two_workers_and_concurrent_producers(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    producers, per_producer = 6, 25
    rng = random.Random(7)
    failed_once: set[str] = set()

    def respond(got: Received) -> web.Response:
        # a transient failure on some first tries: the lane must wait for its head
        event_id = got.headers["webhook-id"]
        if event_id not in failed_once and rng.random() < 0.2:
            failed_once.add(event_id)
            return web.Response(status=500)
        return web.Response(status=204)

    receiver.respond = respond
    await _endpoint(api, tenant, receiver.url)

    async def produce(p: int) -> None:
        for n in range(per_producer):
            r = await api.post(
                "/v1/events", headers=tenant.headers, json={"type": "t", "data": {"p": p, "n": n}}
            )
            assert r.status_code == 202, r.text

    with processes.workers(settings, 2):
        await asyncio.gather(*(produce(p) for p in range(producers)))
        total = producers * per_producer
        await wait_for(
            lambda: (
                len(
                    {
                        r.headers["webhook-id"]
                        for r in receiver.requests
                        if r in _successes(receiver, failed_once)
                    }
                )
                >= total
            ),
            timeout=60,
            what="every event",
        )

    delivered = _successes(receiver, failed_once)
    ids = [r.headers["webhook-id"] for r in delivered]
    assert len(ids) == len(set(ids)) == total, "an event was lost or sent twice"
    seqs = [int(r.headers["hookline-sequence"]) for r in delivered]
    assert seqs == list(range(1, total + 1)), "the lane's sequence has a gap or a reordering"
    seen: dict[int, list[int]] = defaultdict(list)
    for r in delivered:
        data = json.loads(r.body)["data"]
        seen[data["p"]].append(data["n"])
    assert all(seen[p] == list(range(per_producer)) for p in range(producers))
    # one at a time: a request never arrived while the previous one was unanswered
    assert len(failed_once) > 0
    await wait_for(lambda: _all_succeeded(api, tenant, total), what="results recorded")


async def _all_succeeded(api: httpx.AsyncClient, tenant: TenantKey, count: int) -> bool:
    return (await _statuses(api, tenant)) == {"succeeded": count}


def _successes(receiver: Receiver, failed_once: set[str]) -> list[Received]:
    """The requests that were answered 2xx: all but the first try of a failed-once event."""
    out, first_seen = [], set()
    for r in list(receiver.requests):
        event_id = r.headers["webhook-id"]
        if event_id in failed_once and event_id not in first_seen:
            first_seen.add(event_id)
            continue
        out.append(r)
    return out


async def test_flushing_redis_loses_nothing(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    redis: Redis,
) -> None:
    first_try = asyncio.Event()

    def respond(got: Received) -> web.Response:
        if len(receiver.requests) == 1:
            first_try.set()
            return web.Response(status=500)  # a retry is now due, known only to Postgres
        return web.Response(status=204)

    receiver.respond = respond
    slow = settings.model_copy(update={"retry_schedule": [1.0, 1.0]})
    await _endpoint(api, tenant, receiver.url)
    with processes.workers(slow, 1):
        await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
        await asyncio.wait_for(first_try.wait(), 30)
        await redis.flushall()
        await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
        await redis.flushall()
        await wait_for(
            lambda: _all_succeeded(api, tenant, 2),
            timeout=30,
            what="the retry and the second event after FLUSHALL",
        )
        assert len(receiver.requests) == 3


async def test_worker_killed_mid_request_loses_nothing(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
) -> None:
    in_flight = asyncio.Event()
    never = asyncio.Event()

    async def respond(got: Received) -> web.StreamResponse:
        if len(receiver.requests) == 1:
            in_flight.set()
            await never.wait()  # hangs until the worker dies and the connection drops
        return web.Response(status=204)

    receiver.respond = respond
    short = settings.model_copy(update={"delivery_timeout": 3.0, "lease_margin": 0.5})
    await _endpoint(api, tenant, receiver.url)
    victim = processes.start(short, "worker")
    try:
        for n in range(3):
            await api.post(
                "/v1/events", headers=tenant.headers, json={"type": "t", "data": {"n": n}}
            )
        await asyncio.wait_for(in_flight.wait(), 30)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
    with processes.workers(short, 1):
        await wait_for(
            lambda: _all_succeeded(api, tenant, 3),
            timeout=30,
            what="the in-flight request again, then the rest",
        )
    never.set()  # let the dead worker's orphaned handler finish
    order = [json.loads(r.body)["data"]["n"] for r in receiver.requests]
    # the only duplicate is the request that was in flight at the kill
    assert order == [0, 0, 1, 2]
