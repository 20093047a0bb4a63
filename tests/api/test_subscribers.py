"""Subscribers through the API: create, list, read, change, delete (which stops their
deliveries for good), and magic links into their portal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiohttp import web

from hookline.db import Pool
from hookline.portal import redeem_portal_link
from hookline.settings import Settings
from hookline.tenants import create_tenant
from tests.api.test_endpoints import make_endpoint, send_event
from tests.conftest import TenantKey
from tests.receiver import Received, Receiver, wait_for


async def test_create_list_read_change_delete(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    h = tenant.headers
    for n in range(3):
        r = await api.post("/v1/subscribers", headers=h, json={"uid": f"c{n}", "name": f"C {n}"})
        assert r.status_code == 201, r.text
    r = await api.post("/v1/subscribers", headers=h, json={"uid": "c0"})
    assert r.status_code == 409

    first = (await api.get("/v1/subscribers", headers=h, params={"limit": 2})).json()
    assert [s["uid"] for s in first["data"]] == ["c2", "c1"]
    rest = await api.get("/v1/subscribers", headers=h, params={"cursor": first["next_cursor"]})
    assert [s["uid"] for s in rest.json()["data"]] == ["c0"]

    r = await api.patch("/v1/subscribers/c0", headers=h, json={"name": "Renamed"})
    assert r.status_code == 200 and r.json()["name"] == "Renamed" and r.json()["uid"] == "c0"
    await make_endpoint(api, tenant, "http://127.0.0.1:9/a", uid="c0")
    r = await api.patch("/v1/subscribers/c0", headers=h, json={"uid": "c0-new"})
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    assert (await api.get("/v1/subscribers/c0", headers=h)).status_code == 404
    moved = await api.get("/v1/endpoints", headers=h, params={"subscriber": "c0-new"})
    assert [e["subscriber"] for e in moved.json()["data"]] == ["c0-new"]

    r = await api.patch("/v1/subscribers/c0-new", headers=h, json={"uid": "c1"})
    assert r.status_code == 409
    for body in ({"uid": None}, {"name": None}, {"uid": "has space"}, {"email": "x@y.z"}):
        r = await api.patch("/v1/subscribers/c1", headers=h, json=body)
        assert r.status_code == 422, body
    assert (await api.patch("/v1/subscribers/nobody", headers=h, json={})).status_code == 404

    assert (await api.delete("/v1/subscribers/c0-new", headers=h)).status_code == 204
    assert (await api.get("/v1/subscribers/c0-new", headers=h)).status_code == 404
    assert (await api.delete("/v1/subscribers/c0-new", headers=h)).status_code == 404
    assert (await api.get("/v1/endpoints", headers=h)).json()["data"] == []


@pytest.mark.usefixtures("worker")
async def test_deleting_a_subscriber_stops_its_pending_deliveries(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, pool: Pool
) -> None:
    def failing_victim(got: Received) -> web.StreamResponse:
        return web.Response(status=503 if got.path.endswith("/victim") else 204)

    receiver.respond = failing_victim
    victim = await make_endpoint(api, tenant, receiver.url + "/victim", uid="victim")
    await make_endpoint(api, tenant, receiver.url + "/control", uid="control")
    events = [await send_event(api, tenant, subscriber="victim") for _ in range(2)]
    h = tenant.headers
    retrying: dict[str, Any] = {}

    async def first_attempt_failed() -> bool:
        params = {"endpoint": victim["id"], "status": "retrying"}
        found = (await api.get("/v1/deliveries", headers=h, params=params)).json()["data"]
        retrying.update(found[0] if found else {})
        return bool(found)

    await wait_for(first_attempt_failed, what="the victim's first attempt to fail")
    retry_due = datetime.fromisoformat(retrying["next_attempt_at"])

    assert (await api.delete("/v1/subscribers/victim", headers=h)).status_code == 204
    assert (await api.get(f"/v1/endpoints/{victim['id']}", headers=h)).status_code == 404
    r = await api.get("/v1/deliveries", headers=h, params={"endpoint": victim["id"]})
    assert r.json()["data"] == []
    for event_id in events:  # the events stay, no longer naming the subscriber
        event = (await api.get(f"/v1/events/{event_id}", headers=h)).json()
        assert "subscriber" not in event

    # once the retry would have been due, the worker delivers newer work elsewhere, and
    # the victim never hears from hookline again
    async def retry_was_due() -> bool:
        return bool(await pool.fetchval("SELECT now() > $1", retry_due))

    await wait_for(retry_was_due, what="the victim's retry time")
    await send_event(api, tenant, subscriber="control")
    await wait_for(
        lambda: any(got.path.endswith("/control") for got in receiver.requests),
        what="the control delivery",
    )
    assert sum(got.path.endswith("/victim") for got in receiver.requests) == 1


async def test_a_portal_link_opens_the_portal_once(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool, settings: Settings
) -> None:
    created = (await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})).json()
    r = await api.post("/v1/subscribers/c/portal-link", headers=tenant.headers)
    assert r.status_code == 201, r.text
    link = r.json()
    assert set(link) == {"url", "expires_at"}
    assert link["url"].startswith(settings.public_url + "/portal/login?token=hkp_")
    expires = datetime.fromisoformat(link["expires_at"]) - datetime.now(UTC)
    assert timedelta(minutes=14) < expires <= timedelta(minutes=15)

    token = parse_qs(urlsplit(link["url"]).query)["token"][0]
    assert await redeem_portal_link(pool, token) == (tenant.id, created["id"])
    r = await api.post("/v1/subscribers/nobody/portal-link", headers=tenant.headers)
    assert r.status_code == 404


async def test_other_tenants_cannot_touch_a_subscriber(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool
) -> None:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c", "name": "Mine"})
    ep = await make_endpoint(api, tenant, "http://127.0.0.1:9/a", uid="c")
    _other, key = await create_tenant(pool, "Other")
    theirs = {"authorization": f"Bearer {key}"}
    for method, url, body in (
        ("GET", "/v1/subscribers/c", None),
        ("PATCH", "/v1/subscribers/c", {"name": "Theirs"}),
        ("DELETE", "/v1/subscribers/c", None),
        ("POST", "/v1/subscribers/c/portal-link", None),
    ):
        r = await api.request(method, url, headers=theirs, json=body)
        assert r.status_code == 404, (method, url, r.text)
    assert (await api.get("/v1/subscribers", headers=theirs)).json()["data"] == []
    # the same uid in another tenant is another subscriber
    assert (await api.post("/v1/subscribers", headers=theirs, json={"uid": "c"})).status_code == 201
    mine = (await api.get("/v1/subscribers/c", headers=tenant.headers)).json()
    assert mine["name"] == "Mine"
    assert (await api.get(f"/v1/endpoints/{ep['id']}", headers=tenant.headers)).status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM portal_links") == 0
