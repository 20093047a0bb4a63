"""format=cloudevents: CloudEvents 1.0 structured events, parsed by the cloudevents SDK,
signed like every other delivery."""

from __future__ import annotations

import json

import httpx
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from standardwebhooks.webhooks import Webhook

from tests.conftest import TenantKey
from tests.receiver import Receiver, wait_for

pytestmark = pytest.mark.usefixtures("worker")


async def _endpoint(api: httpx.AsyncClient, tenant: TenantKey, url: str, **fields: str) -> str:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    r = await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={"subscriber": "c", "url": url, "format": "cloudevents", **fields},
    )
    assert r.status_code == 201, r.text
    secret = await api.get(f"/v1/endpoints/{r.json()['id']}/secret", headers=tenant.headers)
    key: str = secret.json()["key"]
    return key


async def test_full_cloudevents_parse_with_the_sdk_and_verify(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    secret = await _endpoint(api, tenant, receiver.url, payload="full", ordering="keyed")
    sent = []
    for n in range(2):
        r = await api.post(
            "/v1/events",
            headers=tenant.headers,
            json={"type": "order.created", "subject": "order_1", "data": {"total": 42, "n": n}},
        )
        sent.append(r.json())
    await wait_for(lambda: len(receiver.requests) == 2, what="both events")
    for n, got in enumerate(receiver.requests):
        assert got.headers["content-type"] == "application/cloudevents+json"
        Webhook(secret).verify(got.body, got.headers)
        event = from_http_event(HTTPMessage(headers=got.headers, body=got.body))
        assert event.get_id() == sent[n]["id"]
        assert event.get_type() == "order.created"
        assert event.get_source() == f"urn:hookline:{tenant.id}"
        assert event.get_subject() == "order_1"
        assert event.get_time() is not None
        assert event.get_data() == {"total": 42, "n": n}
        assert event.get_extension("sequence") == str(n + 1)
        assert event.get_extension("partitionkey") == "order_1"


async def test_thin_cloudevents_carry_the_fetch_link(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    await _endpoint(api, tenant, receiver.url)
    await api.post(
        "/v1/events",
        headers=tenant.headers,
        json={"type": "order.created", "url": "https://shop.example/o/1", "data": {"secret": 1}},
    )
    await wait_for(lambda: len(receiver.requests) == 1, what="the event")
    got = receiver.requests[0]
    event = from_http_event(HTTPMessage(headers=got.headers, body=got.body))
    data = event.get_data()
    assert isinstance(data, dict)
    assert data["url"] == "https://shop.example/o/1" and "secret" not in json.dumps(data)
    link = httpx.URL(data["links"]["event"])
    fetched = await api.get(link.path, params=dict(link.params))
    assert fetched.json()["data"] == {"secret": 1}
    assert event.get_extension("partitionkey") is None  # strict: no key
    assert event.get_extension("sequence") == "1"
