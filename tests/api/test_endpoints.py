"""Endpoints through the API: every field round-trips, PATCH is partial and re-checked,
pause holds deliveries and resume sends them, delete leaves nothing to send."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from hookline.db import Pool
from hookline.settings import Settings
from hookline.tenants import create_tenant
from tests.conftest import TenantKey, running_worker
from tests.receiver import Received, Receiver, wait_for

EVERY_FIELD: dict[str, Any] = {
    "description": "orders for the warehouse",
    "event_types": ["order.created", "order.paid"],
    "ordering": "keyed",
    "on_exhausted": "pause",
    "payload": "full",
    "format": "cloudevents",
    "timeout": 7.5,
    "rate_limit": 50,
    "max_in_flight": 4,
    "headers": {"X-Team": "warehouse", "X-Region": "eu"},
    "sensitive_headers": ["X-Shard"],
    "schema_version": 2,
}


async def make_endpoint(
    api: httpx.AsyncClient, tenant: TenantKey, url: str, uid: str = "cust_1", **fields: Any
) -> dict[str, Any]:
    r = await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": uid})
    assert r.status_code in (201, 409), r.text
    r = await api.post(
        "/v1/endpoints", headers=tenant.headers, json={"subscriber": uid, "url": url, **fields}
    )
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def send_event(api: httpx.AsyncClient, tenant: TenantKey, **fields: Any) -> str:
    body = {"type": "order.created", "data": {}, **fields}
    r = await api.post("/v1/events", headers=tenant.headers, json=body)
    assert r.status_code == 202, r.text
    event_id: str = r.json()["id"]
    return event_id


async def test_every_field_round_trips_through_create_patch_and_get(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    created = await make_endpoint(api, tenant, "http://127.0.0.1:9/a", **EVERY_FIELD)
    path, h = f"/v1/endpoints/{created['id']}", tenant.headers
    read = (await api.get(path, headers=h)).json()
    assert read == created
    assert {k: read[k] for k in EVERY_FIELD} == EVERY_FIELD
    assert read["status"] == "active" and read["subscriber"] == "cust_1"

    changed: dict[str, Any] = {
        "url": "http://127.0.0.1:9/b",
        "description": "",
        "event_types": ["invoice.paid"],
        "ordering": "none",
        "on_exhausted": "dead_letter",
        "payload": "thin",
        "format": "standard",
        "timeout": 2.0,
        "rate_limit": 1,
        "max_in_flight": 1000,
        "headers": {"X-Other": "1"},
        "sensitive_headers": [],
        "schema_version": 1,
    }
    for field, value in changed.items():  # one at a time: the others must stay
        r = await api.patch(path, headers=h, json={field: value})
        assert r.status_code == 200, r.text
        assert r.json()[field] == value
    read = (await api.get(path, headers=h)).json()
    assert {k: read[k] for k in changed} == changed
    assert read["updated_at"] > created["updated_at"]

    # null resets what may be null: every type, the global timeout, no limit, any version
    nulls = {"event_types": None, "timeout": None, "rate_limit": None, "schema_version": None}
    r = await api.patch(path, headers=h, json=nulls)
    assert r.status_code == 200 and {k: r.json()[k] for k in nulls} == nulls
    assert (await api.patch(path, headers=h, json={})).json() == r.json()


async def test_patch_refuses_what_create_refuses(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    ep = await make_endpoint(api, tenant, "http://127.0.0.1:9/a", headers={"X-A": "1"})
    path, h = f"/v1/endpoints/{ep['id']}", tenant.headers
    for body, loc in (
        ({"url": None}, ["body", "url"]),
        ({"ordering": None}, ["body", "ordering"]),
        ({"ordering": "random"}, ["body", "ordering"]),
        ({"headers": {"Webhook-Signature": "v1,forged"}}, ["body", "headers"]),
        ({"headers": {"X-Bad": "a\r\nInjected: 1"}}, ["body", "headers", "X-Bad"]),
        ({"headers": {"Bad Name": "x"}}, ["body", "headers", "Bad Name", "[key]"]),
        ({"timeout": 31}, ["body", "timeout"]),
        ({"max_in_flight": 0}, ["body", "max_in_flight"]),
        ({"schema_version": 0}, ["body", "schema_version"]),
        ({"status": "disabled"}, ["body", "status"]),
        ({"subscriber": "cust_2"}, ["body", "subscriber"]),
    ):
        r = await api.patch(path, headers=h, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["loc"] == loc, (body, r.json())
    assert (await api.get(path, headers=h)).json() == ep


async def test_patch_checks_a_new_url_against_ssrf(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    ep = await make_endpoint(api, tenant, "http://127.0.0.1:9/a")
    path, h = f"/v1/endpoints/{ep['id']}", tenant.headers
    for url in (
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:169.254.169.254]/",
        "http://0xa000001/",
        "ftp://127.0.0.1/",
        "http://user:pw@127.0.0.1/",
    ):
        r = await api.patch(path, headers=h, json={"url": url, "description": "moved"})
        assert r.status_code == 422, url
        assert r.json()["errors"][0]["loc"] == ["body", "url"], url
    assert (await api.get(path, headers=h)).json() == ep  # nothing of a refused PATCH stays


@pytest.mark.parametrize("stopped", ["paused", "disabled"])
async def test_a_stopped_endpoint_holds_deliveries_until_made_active(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
    stopped: str,
) -> None:
    ep = await make_endpoint(api, tenant, receiver.url)
    path, h = f"/v1/endpoints/{ep['id']}", tenant.headers
    events = [await send_event(api, tenant, subject=f"order_{n}") for n in range(3)]
    if stopped == "paused":
        r = await api.patch(path, headers=h, json={"status": "paused"})
        assert r.json()["status"] == "paused"
    else:  # as a 410 Gone does it
        await pool.execute(
            "UPDATE endpoints SET status = 'disabled', status_reason = '410 Gone' WHERE id = $1",
            ep["id"],
        )

    async def parked() -> bool:
        lane = "SELECT ready_at IS NULL FROM lanes WHERE endpoint_id = $1"
        return bool(await pool.fetchval(lane, ep["id"]))

    async with running_worker(settings, pool, redis):
        await wait_for(parked, what="the worker to park the stopped endpoint's lane")
        # events sent meanwhile wait for a paused endpoint; a disabled one takes none
        later = [await send_event(api, tenant, subject=f"order_{n}") for n in (3, 4)]
        if stopped == "paused":
            events += later
        await wait_for(parked, what="the lane to be parked again")
        assert receiver.requests == []
        r = await api.patch(path, headers=h, json={"status": "active"})
        assert r.status_code == 200 and r.json()["status"] == "active"
        assert r.json()["status_reason"] == ""
        await wait_for(lambda: len(receiver.requests) == len(events), what="what waited")
    assert [got.headers["webhook-id"] for got in receiver.requests] == events
    expected = [str(n) for n in range(1, len(events) + 1)]
    assert [got.headers["hookline-sequence"] for got in receiver.requests] == expected


async def test_a_new_ordering_applies_to_new_events(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool
) -> None:
    ep = await make_endpoint(api, tenant, "http://127.0.0.1:9/a")
    await send_event(api, tenant, subject="order_1")
    r = await api.patch(
        f"/v1/endpoints/{ep['id']}", headers=tenant.headers, json={"ordering": "keyed"}
    )
    assert r.json()["ordering"] == "keyed"
    await send_event(api, tenant, subject="order_1")
    lanes = await pool.fetch(
        "SELECT l.key, array_agg(d.seq ORDER BY d.seq) AS seqs FROM lanes l"
        " JOIN deliveries d ON d.lane_id = l.id WHERE l.endpoint_id = $1"
        " GROUP BY l.key ORDER BY l.key",
        ep["id"],
    )
    # the pending delivery stays in the strict lane; the new one starts its key's lane
    assert [(lane["key"], lane["seqs"]) for lane in lanes] == [("", [1]), ("order_1", [1])]


@pytest.mark.usefixtures("worker")
async def test_delete_waits_for_the_request_in_flight_and_leaves_nothing_to_send(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, pool: Pool
) -> None:
    gate = asyncio.Event()

    async def slow_then_ok(got: Received) -> web.StreamResponse:
        if got.path.endswith("/victim"):
            await gate.wait()
        return web.Response(status=204)

    receiver.respond = slow_then_ok
    victim = await make_endpoint(api, tenant, receiver.url + "/victim")
    control = await make_endpoint(api, tenant, receiver.url + "/control", uid="cust_2")
    for n in range(3):
        await send_event(api, tenant, subscriber="cust_1", subject=f"order_{n}")
    await wait_for(lambda: len(receiver.requests) == 1, what="the first request to hang")

    deleting = asyncio.create_task(
        api.delete(f"/v1/endpoints/{victim['id']}", headers=tenant.headers)
    )

    async def stopped() -> bool:
        status = await pool.fetchval("SELECT status FROM endpoints WHERE id = $1", victim["id"])
        return bool(status == "disabled")

    await wait_for(stopped, what="the endpoint to be stopped for deletion")
    assert not deleting.done(), "DELETE answered while a request to the endpoint was in flight"
    gate.set()
    r = await deleting
    assert r.status_code == 204, r.text
    sent = len(receiver.requests)  # the head, and followers claimed with it before the stop

    for table in ("endpoints WHERE id", "lanes WHERE endpoint_id", "deliveries WHERE endpoint_id"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table} = $1", victim["id"]) == 0
    assert (
        await api.get(f"/v1/endpoints/{victim['id']}", headers=tenant.headers)
    ).status_code == 404
    assert (
        await api.delete(f"/v1/endpoints/{victim['id']}", headers=tenant.headers)
    ).status_code == 404

    # the worker goes on: a later event to another endpoint arrives, nothing more of the victim
    await send_event(api, tenant, subscriber="cust_2")
    await wait_for(
        lambda: any(got.path.endswith("/control") for got in receiver.requests),
        what="the control endpoint's delivery",
    )
    assert sum(got.path.endswith("/victim") for got in receiver.requests) == sent
    assert control["id"] != victim["id"]


async def test_other_tenants_cannot_change_an_endpoint(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool
) -> None:
    ep = await make_endpoint(api, tenant, "http://127.0.0.1:9/a")
    path = f"/v1/endpoints/{ep['id']}"
    secret = (await api.get(f"{path}/secret", headers=tenant.headers)).json()
    _other, key = await create_tenant(pool, "Other")
    theirs = {"authorization": f"Bearer {key}"}
    for method, url, body in (
        ("PATCH", path, {"status": "paused", "url": "http://127.0.0.1:9/theirs"}),
        ("DELETE", path, None),
        ("GET", f"{path}/secret", None),
        ("POST", f"{path}/secret/rotate", {}),
        ("POST", f"{path}/test", {"type": "order.created"}),
    ):
        r = await api.request(method, url, headers=theirs, json=body)
        assert r.status_code == 404, (method, url, r.text)
    assert (await api.get(path, headers=tenant.headers)).json() == ep
    assert (await api.get(f"{path}/secret", headers=tenant.headers)).json() == secret
    assert await pool.fetchval("SELECT count(*) FROM events") == 0


async def test_a_vanishingly_small_timeout_is_refused_not_a_500(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    ep = await make_endpoint(api, tenant, "http://127.0.0.1:9/a")
    for path in (f"/v1/endpoints/{ep['id']}", "/v1/settings"):
        key = "timeout" if "endpoints" in path else "delivery_timeout"
        r = await api.patch(path, headers=tenant.headers, json={key: 5e-324})
        assert r.status_code == 422, (path, r.text)
