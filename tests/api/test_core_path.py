"""The core path through the API: register, ingest, deliver signed, read back."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from tests.conftest import TenantKey
from tests.receiver import Receiver, wait_for


async def _endpoint(
    api: httpx.AsyncClient, tenant: TenantKey, url: str, **fields: Any
) -> dict[str, Any]:
    r = await api.post(
        "/v1/subscribers", headers=tenant.headers, json={"uid": "cust_1", "name": "Customer One"}
    )
    assert r.status_code in (201, 409), r.text
    r = await api.post(
        "/v1/endpoints", headers=tenant.headers, json={"subscriber": "cust_1", "url": url, **fields}
    )
    assert r.status_code == 201, r.text
    endpoint: dict[str, Any] = r.json()
    return endpoint


@pytest.mark.usefixtures("worker")
async def test_event_arrives_signed_and_verifiable(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    endpoint = await _endpoint(api, tenant, receiver.url)
    secret = (
        await api.get(f"/v1/endpoints/{endpoint['id']}/secret", headers=tenant.headers)
    ).json()["key"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32

    r = await api.post(
        "/v1/events",
        headers=tenant.headers,
        json={
            "type": "order.created",
            "subject": "order_1",
            "url": "https://shop.example/o/1",
            "data": {"total": 42},
        },
    )
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["id"].startswith("evt_") and accepted["deliveries"] == 1

    await wait_for(lambda: len(receiver.requests) == 1, what="the delivery")
    got = receiver.requests[0]
    # both reference libraries verify the exact bytes and headers we sent
    StandardWebhook(secret).verify(got.body, got.headers)
    SvixWebhook(secret).verify(got.body, got.headers)
    assert got.headers["webhook-id"] == accepted["id"]
    assert got.headers["hookline-attempt"] == "1"
    assert got.headers["hookline-sequence"] == "1"
    assert got.headers["user-agent"].startswith("hookline/")
    assert got.headers["content-type"] == "application/json"
    body = json.loads(got.body)
    # thin by default: no data, but a signed link to it
    assert set(body) == {"id", "type", "timestamp", "subject", "url", "links"}
    assert body["type"] == "order.created" and body["subject"] == "order_1"
    assert body["timestamp"].endswith("Z")

    link = httpx.URL(body["links"]["event"])
    fetched = await api.get(link.path, params=dict(link.params))
    assert fetched.status_code == 200 and fetched.json()["data"] == {"total": 42}
    tampered = dict(link.params) | {"sig": "A" * 32}
    assert (await api.get(link.path, params=tampered)).status_code == 404

    async def recorded() -> bool:
        r = await api.get("/v1/deliveries", headers=tenant.headers)
        return bool(r.json()["data"]) and r.json()["data"][0]["status"] == "succeeded"

    await wait_for(recorded, what="the delivery to be recorded")
    listed = (await api.get("/v1/deliveries", headers=tenant.headers)).json()["data"]
    one = (await api.get(f"/v1/deliveries/{listed[0]['id']}", headers=tenant.headers)).json()
    assert one["attempts"] == 1 and one["attempt_history"][0]["status_code"] == 204
    assert one["attempt_history"][0]["request_headers"]["webhook-id"] == accepted["id"]


@pytest.mark.usefixtures("worker")
async def test_full_payload_carries_data(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    await _endpoint(api, tenant, receiver.url, payload="full")
    data = {"total": 42, "items": [{"sku": "a", "n": 2}], "note": "caf\u00e9 <b>"}
    r = await api.post(
        "/v1/events", headers=tenant.headers, json={"type": "order.created", "data": data}
    )
    assert r.status_code == 202
    await wait_for(lambda: len(receiver.requests) == 1, what="the delivery")
    body = json.loads(receiver.requests[0].body)
    assert set(body) == {"id", "type", "timestamp", "data"}
    assert body["data"] == data


async def test_fan_out_follows_types_and_subscriber(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Any
) -> None:
    for uid in ("a", "b"):
        await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": uid})
    url = "http://127.0.0.1:9/hook"
    for uid, types in (("a", ["order.created"]), ("a", None), ("b", ["invoice.paid"])):
        r = await api.post(
            "/v1/endpoints",
            headers=tenant.headers,
            json={"subscriber": uid, "url": url, "event_types": types},
        )
        assert r.status_code == 201, r.text

    async def fan(event: dict[str, Any]) -> int:
        r = await api.post("/v1/events", headers=tenant.headers, json=event)
        assert r.status_code == 202, r.text
        count: int = r.json()["deliveries"]
        return count

    assert await fan({"type": "order.created", "data": {}}) == 2
    assert await fan({"type": "invoice.paid", "data": {}}) == 2
    assert await fan({"type": "invoice.paid", "data": {}, "subscriber": "a"}) == 1
    assert await fan({"type": "other", "data": {}, "subscriber": "b"}) == 0
    r = await api.post(
        "/v1/events", headers=tenant.headers, json={"type": "x", "data": {}, "subscriber": "nobody"}
    )
    assert r.status_code == 422


async def test_bad_requests_get_problem_details(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    r = await api.post("/v1/events", json={"type": "x", "data": {}})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    r = await api.post(
        "/v1/events", headers={"authorization": "Bearer nope"}, json={"type": "x", "data": {}}
    )
    assert r.status_code == 401
    r = await api.post("/v1/events", headers=tenant.headers, json={"type": "x", "data": [1]})
    assert r.status_code == 422
    problem = r.json()
    assert problem["status"] == 422 and problem["errors"][0]["loc"] == ["body", "data"]
    r = await api.post("/v1/events", headers=tenant.headers, content=b"{not json")
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    r = await api.post(
        "/v1/events",
        headers=tenant.headers,
        content=b'{"type": "x", "data": {"a": "' + b"x" * 2_000_000 + b'"}}',
    )
    assert r.status_code == 413
    r = await api.get("/v1/deliveries/dlv_nope", headers=tenant.headers)
    assert r.status_code == 404


async def test_endpoint_url_is_checked_against_ssrf(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "a"})
    for url in (
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest",
        "ftp://127.0.0.1/",
        "http://user:pw@127.0.0.1/",
    ):
        r = await api.post(
            "/v1/endpoints", headers=tenant.headers, json={"subscriber": "a", "url": url}
        )
        assert r.status_code == 422, url
        assert r.json()["errors"][0]["loc"] == ["body", "url"]


async def test_tenants_cannot_see_each_other(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Any
) -> None:
    from hookline.tenants import create_tenant

    _other, other_key = await create_tenant(pool, "Other")
    theirs = {"authorization": f"Bearer {other_key}"}
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "a"})
    ep = (
        await api.post(
            "/v1/endpoints",
            headers=tenant.headers,
            json={"subscriber": "a", "url": "http://127.0.0.1:9/"},
        )
    ).json()
    ev = (
        await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    ).json()
    dlv = (await api.get("/v1/deliveries", headers=tenant.headers)).json()["data"][0]
    for path in (
        f"/v1/endpoints/{ep['id']}",
        f"/v1/endpoints/{ep['id']}/secret",
        f"/v1/events/{ev['id']}",
        f"/v1/deliveries/{dlv['id']}",
        "/v1/subscribers/a",
    ):
        assert (await api.get(path, headers=theirs)).status_code == 404, path
    assert (await api.post(f"/v1/deliveries/{dlv['id']}/retry", headers=theirs)).status_code == 404
    assert (await api.get("/v1/deliveries", headers=theirs)).json()["data"] == []
    r = await api.post(
        "/v1/endpoints", headers=theirs, json={"subscriber": "a", "url": "http://127.0.0.1:9/"}
    )
    assert r.status_code == 422  # their tenant has no subscriber "a"
