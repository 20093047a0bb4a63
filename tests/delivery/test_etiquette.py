"""HTTP etiquette through a real worker and real HTTP: Retry-After honoured exactly (and
capped), response bodies cut at the size cap, compressed bodies kept as they came."""

from __future__ import annotations

import asyncio
import gzip
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import pairwise
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from delivery.attempt import EXCERPT_BYTES
from hookline.db import Pool
from hookline.settings import Settings
from tests.conftest import TenantKey, running_worker
from tests.receiver import Received, Receiver, wait_for

TOLERANCE = 0.05  # seconds a retry may beat its Retry-After by (clock reads, rounding)
SHORT_SCHEDULE = [0.05, 0.05]  # far shorter than any Retry-After below


async def _endpoint(api: httpx.AsyncClient, tenant: TenantKey, url: str, **fields: Any) -> None:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    r = await api.post(
        "/v1/endpoints", headers=tenant.headers, json={"subscriber": "c", "url": url, **fields}
    )
    assert r.status_code == 201, r.text


async def _delivery(api: httpx.AsyncClient, tenant: TenantKey) -> dict[str, Any]:
    [listed] = (await api.get("/v1/deliveries", headers=tenant.headers)).json()["data"]
    one: dict[str, Any] = (
        await api.get(f"/v1/deliveries/{listed['id']}", headers=tenant.headers)
    ).json()
    return one


async def _status_is(api: httpx.AsyncClient, tenant: TenantKey, status: str) -> bool:
    return bool((await _delivery(api, tenant))["status"] == status)


async def _send_one(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    r = await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    assert r.status_code == 202, r.text


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _answers(receiver: Receiver, *responses: web.StreamResponse) -> list[float]:
    """Answer the requests with ``responses`` in turn (then 204); return the wall-clock
    time each request arrived at, for comparing with recorded timestamps."""
    arrived: list[float] = []

    def respond(got: Received) -> web.StreamResponse:
        arrived.append(time.time())
        n = len(arrived) - 1
        return responses[n] if n < len(responses) else web.Response(status=204)

    receiver.respond = respond
    return arrived


@pytest.mark.slow
async def test_429_retry_after_seconds_is_waited_out_exactly(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    arrived = _answers(receiver, web.Response(status=429, headers={"retry-after": "1"}))
    await _endpoint(api, tenant, receiver.url)
    quick = settings.model_copy(update={"retry_schedule": SHORT_SCHEDULE})
    async with running_worker(quick, pool, redis):
        await _send_one(api, tenant)
        await wait_for(lambda: _status_is(api, tenant, "succeeded"), what="the retry")

    first, retry = (await _delivery(api, tenant))["attempt_history"]
    assert first["status_code"] == 429
    answered = _at(first["started_at"]) + timedelta(milliseconds=first["duration_ms"])
    due = _at(first["next_attempt_at"])
    assert timedelta(seconds=1) <= due - _at(first["started_at"])
    assert due - answered <= timedelta(seconds=1 + TOLERANCE)
    assert retry["status_code"] == 204 and _at(retry["started_at"]) >= due
    assert arrived[1] - arrived[0] >= 1 - TOLERANCE
    assert [r.headers["hookline-attempt"] for r in receiver.requests] == ["1", "2"]


@pytest.mark.slow
async def test_503_retry_after_http_date_is_waited_for(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    arrived: list[float] = []
    asked: list[datetime] = []

    def respond(got: Received) -> web.StreamResponse:
        arrived.append(time.time())
        if len(arrived) > 1:
            return web.Response(status=204)
        # an HTTP date has whole seconds: the next one but one is 1 to 2 s ahead
        asked.append(datetime.fromtimestamp(math.floor(arrived[0]) + 2, UTC))
        return web.Response(
            status=503, headers={"retry-after": format_datetime(asked[0], usegmt=True)}
        )

    receiver.respond = respond
    await _endpoint(api, tenant, receiver.url)
    quick = settings.model_copy(update={"retry_schedule": SHORT_SCHEDULE})
    async with running_worker(quick, pool, redis):
        await _send_one(api, tenant)
        await wait_for(lambda: _status_is(api, tenant, "succeeded"), what="the retry")

    first, retry = (await _delivery(api, tenant))["attempt_history"]
    assert first["status_code"] == 503
    [when] = asked
    assert abs(_at(first["next_attempt_at"]) - when) < timedelta(milliseconds=1)
    assert _at(retry["started_at"]) >= when
    assert arrived[1] >= when.timestamp() - TOLERANCE
    assert arrived[1] - arrived[0] >= 1 - TOLERANCE


@pytest.mark.slow
async def test_retry_after_longer_than_the_cap_is_capped(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    cap = 0.5
    an_hour_ahead = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    arrived = _answers(
        receiver,
        web.Response(status=429, headers={"retry-after": "3600"}),
        web.Response(status=503, headers={"retry-after": an_hour_ahead}),
    )
    await _endpoint(api, tenant, receiver.url)
    capped = settings.model_copy(update={"retry_schedule": SHORT_SCHEDULE, "retry_after_cap": cap})
    async with running_worker(capped, pool, redis):
        await _send_one(api, tenant)
        await wait_for(
            lambda: _status_is(api, tenant, "succeeded"), timeout=10, what="two capped retries"
        )

    history = (await _delivery(api, tenant))["attempt_history"]
    assert [a["status_code"] for a in history] == [429, 503, 204]
    for attempt, after in pairwise(history):
        started = _at(attempt["started_at"])
        answered = started + timedelta(milliseconds=attempt["duration_ms"])
        due = _at(attempt["next_attempt_at"])
        assert timedelta(seconds=cap) <= due - started
        assert due - answered <= timedelta(seconds=cap + TOLERANCE)
        assert _at(after["started_at"]) >= due
    assert all(b - a >= cap - TOLERANCE for a, b in pairwise(arrived))


async def test_a_body_past_the_size_cap_is_cut_and_the_status_still_counts(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    stop = asyncio.Event()

    async def endless(fill: bytes) -> AsyncIterator[bytes]:
        # never ends on its own: only a client that stops reading finishes this attempt
        # before its deadline
        while not stop.is_set():
            yield fill * 8192
            await asyncio.sleep(0)

    def respond(got: Received) -> web.StreamResponse:
        if len(receiver.requests) == 1:
            return web.Response(status=500, body=endless(b"a"))
        return web.Response(status=200, body=endless(b"b"))

    receiver.respond = respond
    await _endpoint(api, tenant, receiver.url, timeout=3)
    small = settings.model_copy(update={"response_max_bytes": 1024})
    try:
        async with running_worker(small, pool, redis):
            await _send_one(api, tenant)
            await wait_for(lambda: _status_is(api, tenant, "succeeded"), what="the retry")
    finally:
        stop.set()

    failed, succeeded = (await _delivery(api, tenant))["attempt_history"]
    assert failed["status_code"] == 500 and failed["error"] is None
    assert succeeded["status_code"] == 200 and succeeded["error"] is None
    for attempt, fill in ((failed, "a"), (succeeded, "b")):
        body = attempt["response_body"]
        assert 0 < len(body) <= EXCERPT_BYTES and set(body) == {fill}
        assert attempt["duration_ms"] < 3000  # cut, not read until the deadline


async def test_a_gzip_body_is_stored_as_it_came_not_decompressed(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, worker: None
) -> None:
    raw = gzip.compress(b'{"ok": true}', mtime=0)
    receiver.respond = lambda got: web.Response(
        status=200,
        body=raw,
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    await _endpoint(api, tenant, receiver.url)
    await _send_one(api, tenant)
    await wait_for(lambda: _status_is(api, tenant, "succeeded"), what="the delivery")

    [attempt] = (await _delivery(api, tenant))["attempt_history"]
    assert attempt["status_code"] == 200
    assert attempt["response_headers"]["content-encoding"] == "gzip"
    body = attempt["response_body"]
    assert "ok" not in body
    assert body.startswith("\x1f\ufffd")  # the gzip magic number, 1f 8b, as text
    # byte for byte, except what text cannot hold: invalid UTF-8 and NUL (which Postgres
    # refuses in text; gzip's header has several) each become U+FFFD
    assert b"\x00" in raw
    assert body == raw.decode("utf-8", "replace").replace("\x00", "\ufffd")
