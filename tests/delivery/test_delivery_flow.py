"""Retries, dead-letter, manual retry and endpoint etiquette through a real worker."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.conftest import TenantKey
from tests.receiver import Received, Receiver, wait_for

pytestmark = pytest.mark.usefixtures("worker")


async def _setup(api: httpx.AsyncClient, tenant: TenantKey, url: str, **fields: Any) -> str:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    r = await api.post(
        "/v1/endpoints", headers=tenant.headers, json={"subscriber": "c", "url": url, **fields}
    )
    assert r.status_code == 201, r.text
    endpoint_id: str = r.json()["id"]
    return endpoint_id


async def _delivery(api: httpx.AsyncClient, tenant: TenantKey) -> dict[str, Any]:
    listed = (await api.get("/v1/deliveries", headers=tenant.headers)).json()["data"]
    one: dict[str, Any] = (
        await api.get(f"/v1/deliveries/{listed[0]['id']}", headers=tenant.headers)
    ).json()
    return one


async def _status_is(api: httpx.AsyncClient, tenant: TenantKey, status: str) -> bool:
    return bool((await _delivery(api, tenant))["status"] == status)


@pytest.mark.slow
async def test_failure_is_retried_until_success(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    receiver.respond = lambda got: web.Response(
        status=500 if len(receiver.requests) < 3 else 200, text="nope"
    )
    await _setup(api, tenant, receiver.url)
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    await wait_for(lambda: _status_is(api, tenant, "succeeded"), what="success on try 3")
    assert [r.headers["hookline-attempt"] for r in receiver.requests] == ["1", "2", "3"]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    delivery = await _delivery(api, tenant)
    codes = [a["status_code"] for a in delivery["attempt_history"]]
    assert codes == [500, 500, 200]
    assert delivery["attempt_history"][0]["response_body"] == "nope"


@pytest.mark.slow
async def test_exhausted_delivery_is_dead_lettered_then_manually_retried(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    receiver.respond = lambda got: web.Response(status=503)
    await _setup(api, tenant, receiver.url)
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    await wait_for(lambda: _status_is(api, tenant, "failed"), what="dead letter")
    assert len(receiver.requests) == 3  # first try + the two retries of the schedule
    failed = await _delivery(api, tenant)
    r = await api.get("/v1/deliveries", params={"status": "failed"}, headers=tenant.headers)
    assert [d["id"] for d in r.json()["data"]] == [failed["id"]]

    receiver.respond = None  # the receiver is fixed
    r = await api.post(f"/v1/deliveries/{failed['id']}/retry", headers=tenant.headers)
    assert r.status_code == 202, r.text
    await wait_for(lambda: _status_is(api, tenant, "succeeded"), what="manual retry")
    assert receiver.requests[-1].headers["hookline-attempt"] == "4"
    r = await api.post(f"/v1/deliveries/{failed['id']}/retry", headers=tenant.headers)
    assert r.status_code == 409  # succeeded deliveries are not retried


@pytest.mark.slow
async def test_redirect_is_a_failure_and_never_followed(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    def respond(got: Received) -> web.Response:
        if got.path == "/hook":
            return web.Response(status=302, headers={"location": "/elsewhere"})
        return web.Response(status=200)

    receiver.respond = respond
    await _setup(api, tenant, receiver.url)
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    await wait_for(lambda: _status_is(api, tenant, "failed"), what="dead letter")
    assert {r.path for r in receiver.requests} == {"/hook"}


async def test_gone_disables_the_endpoint(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    receiver.respond = lambda got: web.Response(status=410)
    endpoint_id = await _setup(api, tenant, receiver.url)
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    await wait_for(lambda: _status_is(api, tenant, "failed"), what="dead letter")
    assert len(receiver.requests) == 1
    endpoint = (await api.get(f"/v1/endpoints/{endpoint_id}", headers=tenant.headers)).json()
    assert endpoint["status"] == "disabled" and "410" in endpoint["status_reason"]
    r = await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    assert r.json()["deliveries"] == 0


@pytest.mark.slow
async def test_slow_drip_response_cannot_stretch_the_deadline(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    import asyncio

    release = asyncio.Event()

    async def drip(got: Received) -> web.StreamResponse:
        # the status line arrives at once, then the body never finishes
        return web.Response(status=200, body=_never_ending(release))

    receiver.respond = drip
    await _setup(api, tenant, receiver.url, timeout=0.5)
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    await wait_for(lambda: _status_is(api, tenant, "retrying"), what="a timed-out attempt")
    release.set()
    attempt = (await _delivery(api, tenant))["attempt_history"][0]
    assert attempt["error"].startswith("timeout after 0.5s")
    assert attempt["duration_ms"] < 2000


async def _never_ending(release: Any) -> Any:
    import asyncio

    while not release.is_set():
        yield b"x"
        try:
            async with asyncio.timeout(0.05):
                await release.wait()
        except TimeoutError:
            pass


@pytest.mark.slow
async def test_a_receiver_speaking_garbage_fails_the_attempt_not_the_worker(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    import asyncio

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"NOT HTTP AT ALL\r\n\x00\x01\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await _setup(api, tenant, f"http://127.0.0.1:{port}/hook")
        await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
        await wait_for(lambda: _status_is(api, tenant, "failed"), what="dead letter")
    attempts = (await _delivery(api, tenant))["attempt_history"]
    assert len(attempts) == 3
    assert all(a["status_code"] is None and a["error"] for a in attempts)


async def test_an_endpoint_can_have_its_own_retry_schedule(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    receiver.respond = lambda got: web.Response(status=500)
    # the installation allows 2 retries (tests' settings); this endpoint wants 4, quickly
    endpoint_id = await _setup(api, tenant, receiver.url, retry_schedule=[0.05] * 4)
    ep = (await api.get(f"/v1/endpoints/{endpoint_id}", headers=tenant.headers)).json()
    assert ep["retry_schedule"] == [0.05] * 4
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    await wait_for(lambda: _status_is(api, tenant, "failed"), what="dead letter")
    assert len(receiver.requests) == 5
    # a manual retry is one attempt, whatever the length of the schedule that applies
    failed = await _delivery(api, tenant)
    r = await api.post(f"/v1/deliveries/{failed['id']}/retry", headers=tenant.headers)
    assert r.status_code == 202, r.text
    await wait_for(lambda: len(receiver.requests) == 6, what="the manual attempt")
    await wait_for(lambda: _status_is(api, tenant, "failed"), what="dead letter again")
    assert len((await _delivery(api, tenant))["attempt_history"]) == 6
    r = await api.patch(
        f"/v1/endpoints/{endpoint_id}", headers=tenant.headers, json={"retry_schedule": None}
    )
    assert r.status_code == 200 and r.json()["retry_schedule"] is None
    r = await api.patch(
        f"/v1/endpoints/{endpoint_id}", headers=tenant.headers, json={"retry_schedule": [-1]}
    )
    assert r.status_code == 422


async def test_a_tenant_policy_applies_where_an_endpoint_has_none_of_its_own(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    r = await api.patch(
        "/v1/settings",
        headers=tenant.headers,
        json={"retry_schedule": [0.05] * 3, "delivery_timeout": 0.5},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "unknown_event_types": "accept",
        "retry_schedule": [0.05] * 3,
        "delivery_timeout": 0.5,
        "disable_after": None,
        "operational_endpoint": None,
        "retention": None,
    }
    receiver.respond = lambda got: web.Response(status=500)
    inherits = await _setup(api, tenant, receiver.url + "/inherits")
    await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={"subscriber": "c", "url": receiver.url + "/own", "retry_schedule": [0.05]},
    )
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})

    async def both_failed() -> bool:
        rows = (await api.get("/v1/deliveries", headers=tenant.headers)).json()["data"]
        return len(rows) == 2 and all(d["status"] == "failed" for d in rows)

    await wait_for(both_failed, what="both deliveries to be dead-lettered")
    tries = {
        path: sum(r.path == path for r in receiver.requests)
        for path in ("/hook/inherits", "/hook/own")
    }
    assert tries == {"/hook/inherits": 4, "/hook/own": 2}  # tenant's 3 retries; its own 1
    ep = (await api.get(f"/v1/endpoints/{inherits}", headers=tenant.headers)).json()
    assert ep["retry_schedule"] is None  # the endpoint itself still says "inherit"
    r = await api.patch(
        "/v1/settings",
        headers=tenant.headers,
        json={"retry_schedule": None, "delivery_timeout": None},
    )
    assert r.json()["retry_schedule"] is None and r.json()["delivery_timeout"] is None
    assert (
        await api.patch("/v1/settings", headers=tenant.headers, json={"delivery_timeout": 31})
    ).status_code == 422


async def test_a_tenant_timeout_bounds_its_endpoints_attempts(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    import asyncio

    release = asyncio.Event()

    async def hang(got: Received) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=200)

    receiver.respond = hang
    await api.patch("/v1/settings", headers=tenant.headers, json={"delivery_timeout": 0.3})
    await _setup(api, tenant, receiver.url)
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    try:
        await wait_for(lambda: _status_is(api, tenant, "retrying"), what="a timed-out try")
    finally:
        release.set()
    attempt = (await _delivery(api, tenant))["attempt_history"][0]
    assert attempt["error"].startswith("timeout after 0.3s")
