"""Signing secrets and test sends: rotation with a grace period during which old and new
secrets both sign, at most ten old keys, and a test event that reaches one endpoint only."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError
from svix.webhooks import Webhook as SvixWebhook

from hookline.db import Pool
from hookline.settings import Settings
from tests.api.test_endpoints import make_endpoint, send_event
from tests.conftest import TenantKey, expire_secret, stored_secrets
from tests.receiver import Receiver, wait_for


def _secret(n_bytes: int = 32) -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(n_bytes)).decode()


async def _current(api: httpx.AsyncClient, tenant: TenantKey, endpoint_id: str) -> str:
    r = await api.get(f"/v1/endpoints/{endpoint_id}/secret", headers=tenant.headers)
    assert r.status_code == 200, r.text
    key: str = r.json()["key"]
    return key


@pytest.mark.usefixtures("worker")
async def test_during_the_grace_period_old_and_new_secrets_both_verify(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, pool: Pool, settings: Settings
) -> None:
    ep = await make_endpoint(api, tenant, receiver.url)
    old = await _current(api, tenant, ep["id"])
    r = await api.post(f"/v1/endpoints/{ep['id']}/secret/rotate", headers=tenant.headers)
    assert r.status_code == 200, r.text
    new = r.json()["key"]
    assert new != old and await _current(api, tenant, ep["id"]) == new
    grace_end = next(
        s["expires_at"]
        for s in await stored_secrets(pool, settings, ep["id"])
        if s["secret"] == old
    )
    assert abs(grace_end - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)

    await send_event(api, tenant)
    await wait_for(lambda: len(receiver.requests) == 1, what="the delivery")
    got = receiver.requests[0]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for key in (old, new):  # a receiver holding either secret accepts the request
        StandardWebhook(key).verify(got.body, got.headers)
        SvixWebhook(key).verify(got.body, got.headers)

    # once the grace period is over, only the new secret signs
    await expire_secret(pool, settings, ep["id"], old)
    await send_event(api, tenant)
    await wait_for(lambda: len(receiver.requests) == 2, what="the second delivery")
    got = receiver.requests[1]
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    StandardWebhook(new).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(old).verify(got.body, got.headers)


async def test_at_most_ten_old_secrets_are_kept(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool, settings: Settings
) -> None:
    ep = await make_endpoint(api, tenant, "http://127.0.0.1:9/a")
    issued = [await _current(api, tenant, ep["id"])]
    for _ in range(11):
        r = await api.post(f"/v1/endpoints/{ep['id']}/secret/rotate", headers=tenant.headers)
        issued.append(r.json()["key"])
    stored = await stored_secrets(pool, settings, ep["id"])
    # after 11 rotations, 11 secrets were replaced: the oldest of them is gone
    assert [s["secret"] for s in stored] == issued[1:]
    assert [s["expires_at"] is None for s in stored] == [False] * 10 + [True]
    assert len(set(issued)) == 12

    # a replaced secret whose grace period is over goes at the next rotation
    await expire_secret(pool, settings, ep["id"], issued[5])
    await api.post(f"/v1/endpoints/{ep['id']}/secret/rotate", headers=tenant.headers)
    kept = [s["secret"] for s in await stored_secrets(pool, settings, ep["id"])]
    assert len(kept) == 11 and issued[5] not in kept and issued[2] in kept


async def test_a_chosen_secret_is_checked(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    ep = await make_endpoint(api, tenant, "http://127.0.0.1:9/a")
    path = f"/v1/endpoints/{ep['id']}/secret/rotate"
    for n_bytes in (24, 64):
        chosen = _secret(n_bytes)
        r = await api.post(path, headers=tenant.headers, json={"key": chosen})
        assert r.status_code == 200
        assert r.json() == {"key": chosen, "signature": "hmac", "public_keys": []}
        assert await _current(api, tenant, ep["id"]) == chosen
    before = await _current(api, tenant, ep["id"])
    for bad in (
        _secret(23),
        _secret(65),
        _secret(32).removeprefix("whsec_"),
        "whsec_not base64!",
        "whsec_",
    ):
        r = await api.post(path, headers=tenant.headers, json={"key": bad})
        assert r.status_code == 422, bad
        assert r.json()["errors"][0]["loc"][:2] == ["body", "key"], r.json()
    assert await _current(api, tenant, ep["id"]) == before


@pytest.mark.usefixtures("worker")
async def test_a_test_event_reaches_that_endpoint_only(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    one = await make_endpoint(api, tenant, receiver.url + "/one", payload="full")
    other = await make_endpoint(api, tenant, receiver.url + "/other")  # same subscriber
    r = await api.post(
        f"/v1/endpoints/{one['id']}/test",
        headers=tenant.headers,
        json={"type": "order.created", "data": {"total": 42}},
    )
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["event_id"].startswith("evt_") and sent["delivery_id"].startswith("dlv_")

    async def recorded() -> bool:
        r = await api.get(f"/v1/deliveries/{sent['delivery_id']}", headers=tenant.headers)
        return bool(r.json()["status"] == "succeeded")

    await wait_for(recorded, what="the test delivery to succeed")
    assert [got.path for got in receiver.requests] == ["/hook/one"]
    got = receiver.requests[0]
    StandardWebhook(await _current(api, tenant, one["id"])).verify(got.body, got.headers)
    body = json.loads(got.body)
    assert body["id"] == sent["event_id"] and body["type"] == "order.created"
    assert body["data"] == {"total": 42}
    r = await api.get("/v1/deliveries", headers=tenant.headers, params={"event": sent["event_id"]})
    assert [d["endpoint_id"] for d in r.json()["data"]] == [one["id"]]
    event = (await api.get(f"/v1/events/{sent['event_id']}", headers=tenant.headers)).json()
    assert event["subscriber"] == "cust_1"
    assert other["id"] != one["id"]


async def test_a_test_event_needs_an_active_endpoint_that_takes_the_type(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    ep = await make_endpoint(api, tenant, "http://127.0.0.1:9/a", event_types=["order.created"])
    path, h = f"/v1/endpoints/{ep['id']}", tenant.headers
    r = await api.post(f"{path}/test", headers=h, json={"type": "invoice.paid"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "type"]
    r = await api.post(f"{path}/test", headers=h, json={"type": "order.created"})
    assert r.status_code == 202, r.text  # no data: the type has no example, so {}
    await api.patch(path, headers=h, json={"status": "paused"})
    r = await api.post(f"{path}/test", headers=h, json={"type": "order.created"})
    assert r.status_code == 409 and "paused" in r.json()["detail"]
    r = await api.post("/v1/endpoints/ep_nope/test", headers=h, json={"type": "order.created"})
    assert r.status_code == 404
