"""Graceful shutdown, proven on real worker processes: SIGTERM lets the attempt in flight
finish (up to its deadline) and be recorded once, hands the rest back, and a restart loses
nothing."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import httpx
import pytest
from aiohttp import web

from hookline.settings import Settings
from tests import processes
from tests.conftest import TenantKey
from tests.receiver import Received, Receiver, wait_for

pytestmark = pytest.mark.slow

EXIT_DEADLINE = 10.0  # seconds a stopped worker with nothing slow in flight may take
STOPPING = "worker stopping"  # what the worker logs once SIGTERM has reached its loop


class _Worker:
    """A worker process whose stderr is read as it comes, without blocking the test's loop
    (the receiver answering the worker runs on that loop too)."""

    def __init__(self, settings: Settings) -> None:
        self.process = processes.start(settings, "worker")
        assert self.process.stderr is not None
        self._fd = self.process.stderr.fileno()
        os.set_blocking(self._fd, False)
        self.log = ""

    def logged(self, text: str) -> bool:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.log += chunk.decode("utf-8", "replace")
        return text in self.log

    async def terminate(self) -> None:
        """SIGTERM, then wait until the worker's loop has seen it."""
        self.process.terminate()
        await wait_for(lambda: self.logged(STOPPING), what=f"{STOPPING!r} in\n{self.log}")

    async def exited(self, timeout: float = EXIT_DEADLINE) -> int:
        """The exit code, awaited without blocking the loop."""
        await wait_for(
            lambda: self.process.poll() is not None, timeout=timeout, what="the worker to exit"
        )
        self.logged("")
        code = self.process.returncode
        assert code == 0, f"worker exited {code}:\n{self.log}"
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def _endpoint(api: httpx.AsyncClient, tenant: TenantKey, url: str, **fields: Any) -> str:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    r = await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={"subscriber": "c", "url": url, "payload": "full", **fields},
    )
    assert r.status_code == 201, r.text
    endpoint_id: str = r.json()["id"]
    return endpoint_id


async def _ingest(api: httpx.AsyncClient, tenant: TenantKey, n: int) -> str:
    r = await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {"n": n}})
    assert r.status_code == 202, r.text
    event_id: str = r.json()["id"]
    return event_id


async def _deliveries(api: httpx.AsyncClient, tenant: TenantKey) -> dict[str, dict[str, Any]]:
    """Every delivery with its attempts, by event id."""
    listed = (await api.get("/v1/deliveries", headers=tenant.headers)).json()["data"]
    out: dict[str, dict[str, Any]] = {}
    for d in listed:
        r = await api.get(f"/v1/deliveries/{d['id']}", headers=tenant.headers)
        out[d["event_id"]] = r.json()
    return out


async def _all_succeeded(api: httpx.AsyncClient, tenant: TenantKey, count: int) -> bool:
    found = await _deliveries(api, tenant)
    return len(found) == count and all(d["status"] == "succeeded" for d in found.values())


def _order(receiver: Receiver) -> list[int]:
    return [json.loads(r.body)["data"]["n"] for r in receiver.requests]


def _holding_the_first(receiver: Receiver, release: asyncio.Event) -> Any:
    async def respond(got: Received) -> web.StreamResponse:
        if len(receiver.requests) == 1:
            await release.wait()
        return web.Response(status=204)

    return respond


async def test_sigterm_lets_the_attempt_in_flight_finish_and_records_it_once(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    release = asyncio.Event()
    receiver.respond = _holding_the_first(receiver, release)
    await _endpoint(api, tenant, receiver.url)
    worker = _Worker(settings)
    try:
        first = await _ingest(api, tenant, 0)
        await wait_for(lambda: len(receiver.requests) == 1, timeout=30, what="the first request")
        # due while the lane is leased: not claimed by anyone at SIGTERM
        for n in (1, 2):
            await _ingest(api, tenant, n)
        await worker.terminate()
        assert worker.process.poll() is None, "the worker left before its attempt finished"
        release.set()
        released = time.monotonic()
        await worker.exited()
        assert time.monotonic() - released < EXIT_DEADLINE
    finally:
        release.set()
        worker.kill()

    assert _order(receiver) == [0], "only the attempt in flight is finished after SIGTERM"
    recorded = (await _deliveries(api, tenant))[first]
    assert recorded["status"] == "succeeded" and recorded["attempts"] == 1
    assert [a["status_code"] for a in recorded["attempt_history"]] == [204]

    with processes.workers(settings, 1):
        await wait_for(
            lambda: _all_succeeded(api, tenant, 3), timeout=30, what="the rest after a restart"
        )
    assert _order(receiver) == [0, 1, 2], "lost, repeated or reordered across the restart"
    assert all(d["attempts"] == 1 for d in (await _deliveries(api, tenant)).values())


async def test_sigterm_hands_back_deliveries_claimed_behind_the_one_in_flight(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    release = asyncio.Event()
    receiver.respond = _holding_the_first(receiver, release)
    await _endpoint(api, tenant, receiver.url)
    for n in range(4):  # ingested before the worker starts: one claim takes the whole run
        await _ingest(api, tenant, n)
    worker = _Worker(settings)
    try:
        await wait_for(lambda: len(receiver.requests) == 1, timeout=30, what="the head")
        await worker.terminate()
        release.set()
        await worker.exited()
    finally:
        release.set()
        worker.kill()

    assert _order(receiver) == [0], "a delivery was started after SIGTERM"
    statuses = sorted(d["status"] for d in (await _deliveries(api, tenant)).values())
    assert statuses == ["pending", "pending", "pending", "succeeded"]

    with processes.workers(settings, 1):
        await wait_for(
            lambda: _all_succeeded(api, tenant, 4), timeout=30, what="the rest after a restart"
        )
    assert _order(receiver) == [0, 1, 2, 3]


async def test_sigterm_waits_no_longer_than_the_attempt_deadline(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    never = asyncio.Event()

    async def respond(got: Received) -> web.StreamResponse:
        if len(receiver.requests) == 1:
            await never.wait()  # hangs far past the endpoint's 1 s timeout
        return web.Response(status=204)

    receiver.respond = respond
    await _endpoint(api, tenant, receiver.url, timeout=1)
    worker = _Worker(settings)
    try:
        event = await _ingest(api, tenant, 0)
        await wait_for(lambda: len(receiver.requests) == 1, timeout=30, what="the first request")
        arrived = receiver.requests[0].at
        await worker.terminate()
        await worker.exited()
        waited = time.monotonic() - arrived
    finally:
        never.set()
        worker.kill()

    # it waited for the attempt's deadline, and not much past it
    assert 0.9 <= waited < 1 + 4, waited
    recorded = (await _deliveries(api, tenant))[event]
    assert recorded["status"] == "retrying" and recorded["attempts"] == 1
    [attempt] = recorded["attempt_history"]
    assert attempt["status_code"] is None and attempt["error"].startswith("timeout after 1s")

    with processes.workers(settings, 1):
        await wait_for(
            lambda: _all_succeeded(api, tenant, 1), timeout=30, what="the retry after a restart"
        )
    assert [r.headers["hookline-attempt"] for r in receiver.requests] == ["1", "2"]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    history = (await _deliveries(api, tenant))[event]["attempt_history"]
    assert [a["status_code"] for a in history] == [None, 204]
