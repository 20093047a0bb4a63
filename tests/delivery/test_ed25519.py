"""ed25519 (`v1a`) signing keys per endpoint: real deliveries verified as a subscriber would,
with only the `whpk_` public key the API hands out, through rotations within and across
kinds; and the private key never leaving the server."""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from delivery.signing import sign
from hookline.db import Pool
from hookline.secrets import new_private_key, new_signing_secret, public_key, signature_kind
from hookline.settings import Settings
from tests.api.test_endpoints import make_endpoint, send_event
from tests.conftest import TenantKey, expire_secret, stored_secrets
from tests.receiver import Received, Receiver, wait_for

# the Standard Webhooks reference library's own v1a vector (libraries/go, asymmetric test):
# the key is the base64 of a 32-byte ed25519 seed, as read after `whsk_`
VECTOR_KEY = "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk="
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = (
    "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag=="
)


def verify_v1a(public: str, headers: Mapping[str, str], body: bytes) -> None:
    """Verify as the spec tells a subscriber: `whpk_` + base64 of the raw 32-byte key, and a
    `v1a,<base64 signature>` over `{id}.{timestamp}.{body}` among the header's signatures."""
    assert public.startswith("whpk_"), public
    raw = base64.b64decode(public.removeprefix("whpk_"), validate=True)
    key = Ed25519PublicKey.from_public_bytes(raw)
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    for signature in headers["webhook-signature"].split(" "):
        version, _, value = signature.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(value, validate=True), content)
        except InvalidSignature:
            continue
        return
    raise InvalidSignature(f"no v1a signature verifies with {public}")


def versions(got: Received) -> list[str]:
    return [s.split(",", 1)[0] for s in got.headers["webhook-signature"].split(" ")]


async def _keys(api: httpx.AsyncClient, tenant: TenantKey, endpoint_id: str) -> dict[str, Any]:
    r = await api.get(f"/v1/endpoints/{endpoint_id}/secret", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert "whsk_" not in r.text
    keys: dict[str, Any] = r.json()
    return keys


async def _rotate(
    api: httpx.AsyncClient, tenant: TenantKey, endpoint_id: str, **body: Any
) -> dict[str, Any]:
    r = await api.post(
        f"/v1/endpoints/{endpoint_id}/secret/rotate", headers=tenant.headers, json=body
    )
    assert r.status_code == 200, r.text
    assert "whsk_" not in r.text
    keys: dict[str, Any] = r.json()
    assert keys == await _keys(api, tenant, endpoint_id)  # rotate answers as GET would
    return keys


async def _delivered(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, n: int
) -> Received:
    await send_event(api, tenant)
    await wait_for(lambda: len(receiver.requests) == n, what=f"delivery {n}")
    return receiver.requests[n - 1]


def _soon(moment: str, after: timedelta) -> bool:
    return abs(datetime.fromisoformat(moment) - (datetime.now(UTC) + after)) < timedelta(minutes=1)


# --- pure signing ---------------------------------------------------------------------


def test_matches_the_reference_librarys_v1a_vector() -> None:
    assert sign([VECTOR_KEY], VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIG,
    }
    verify_v1a(public_key(VECTOR_KEY), headers, VECTOR_BODY)
    with pytest.raises(InvalidSignature):
        verify_v1a(public_key(VECTOR_KEY), headers, VECTOR_BODY + b" ")


def test_keys_are_encoded_as_the_spec_says() -> None:
    private = new_private_key()
    assert private.startswith("whsk_") and signature_kind(private) == "ed25519"
    assert len(base64.b64decode(private.removeprefix("whsk_"), validate=True)) == 32
    public = public_key(private)
    assert public.startswith("whpk_")
    assert len(base64.b64decode(public.removeprefix("whpk_"), validate=True)) == 32
    assert public_key(private) == public and public_key(new_private_key()) != public
    assert signature_kind(new_signing_secret()) == "hmac"


def test_mixed_kinds_sign_side_by_side_newest_first() -> None:
    ed, hmac_secret = new_private_key(), VECTOR_KEY.replace("whsk_", "whsec_")
    header = sign([ed, hmac_secret, VECTOR_KEY], VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    parts = header.split(" ")
    assert [p.split(",")[0] for p in parts] == ["v1a", "v1", "v1a"] and parts[2] == VECTOR_SIG
    headers = {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TS)}
    for key in (ed, VECTOR_KEY):  # each v1a verifies with its own public key
        verify_v1a(public_key(key), {**headers, "webhook-signature": header}, VECTOR_BODY)
        alone = {**headers, "webhook-signature": sign([key], VECTOR_ID, VECTOR_TS, VECTOR_BODY)}
        verify_v1a(public_key(key), alone, VECTOR_BODY)
    other = new_private_key()
    with pytest.raises(InvalidSignature):
        verify_v1a(public_key(other), {**headers, "webhook-signature": header}, VECTOR_BODY)


# --- real deliveries ------------------------------------------------------------------


@pytest.mark.usefixtures("worker")
async def test_an_ed25519_endpoint_sends_v1a_that_its_public_key_verifies(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    pool: Pool,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ep = await make_endpoint(api, tenant, receiver.url, signature="ed25519", payload="full")
    assert ep["signature"] == "ed25519"
    assert (await api.get(f"/v1/endpoints/{ep['id']}", headers=tenant.headers)).json() == ep
    keys = await _keys(api, tenant, ep["id"])
    public = keys["key"]
    assert keys == {
        "key": public,
        "signature": "ed25519",
        "public_keys": [{"key": public, "expires_at": None}],
    }
    [kept] = await stored_secrets(pool, settings, ep["id"])
    stored = kept["secret"]
    assert stored.startswith("whsk_") and public_key(stored) == public
    assert not kept["sealed"].startswith("whsk_")  # sealed at rest

    got = await _delivered(api, tenant, receiver, 1)
    assert versions(got) == ["v1a"]
    verify_v1a(public, got.headers, got.body)
    with pytest.raises(InvalidSignature):  # a tampered body fails
        verify_v1a(public, got.headers, got.body.replace(b"order.created", b"order.deleted"))
    with pytest.raises(InvalidSignature):  # so does a changed id or timestamp
        verify_v1a(public, {**got.headers, "webhook-timestamp": "1"}, got.body)
    with pytest.raises(InvalidSignature):  # and another endpoint's public key
        verify_v1a(public_key(new_private_key()), got.headers, got.body)
    with pytest.raises(WebhookVerificationError):  # no v1: an HMAC-only receiver rejects it
        StandardWebhook(new_signing_secret()).verify(got.body, got.headers)

    # the private key is nowhere but its own row: not in any answer, stored header or log
    async def recorded() -> bool:
        r = await api.get("/v1/deliveries", headers=tenant.headers, params={"endpoint": ep["id"]})
        return [d["status"] for d in r.json()["data"]] == ["succeeded"]

    await wait_for(recorded, what="the attempt to be recorded")
    r = await api.get("/v1/deliveries", headers=tenant.headers, params={"endpoint": ep["id"]})
    r = await api.get(f"/v1/deliveries/{r.json()['data'][0]['id']}", headers=tenant.headers)
    assert r.json()["attempt_history"][0]["request_headers"]["webhook-signature"].startswith("v1a,")
    listed = await api.get("/v1/endpoints", headers=tenant.headers)
    assert [e["signature"] for e in listed.json()["data"]] == ["ed25519"]
    for answer in (r, listed):
        assert "whsk_" not in answer.text
    # nowhere in the database either, not even in its own row (sealed there)
    pattern = f"%{stored.removeprefix('whsk_')}%"
    tables = await pool.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    assert "endpoint_secrets" in {t["table_name"] for t in tables}
    for t in tables:
        name = t["table_name"]
        leaked = await pool.fetchval(
            f'SELECT count(*) FROM "{name}" x WHERE x::text LIKE $1',  # names from the catalog
            pattern,
        )
        assert leaked == 0, name
    assert "whsk_" not in caplog.text and stored.removeprefix("whsk_") not in caplog.text


@pytest.mark.usefixtures("worker")
async def test_rotating_hmac_to_ed25519_sends_both_and_each_verifies(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, pool: Pool, settings: Settings
) -> None:
    ep = await make_endpoint(api, tenant, receiver.url)
    assert ep["signature"] == "hmac"
    before = await _keys(api, tenant, ep["id"])
    old = before["key"]
    assert before == {"key": old, "signature": "hmac", "public_keys": []}
    assert old.startswith("whsec_")

    keys = await _rotate(api, tenant, ep["id"], signature="ed25519")
    public = keys["key"]
    assert keys == {
        "key": public,
        "signature": "ed25519",
        "public_keys": [{"key": public, "expires_at": None}],
    }
    shown = await api.get(f"/v1/endpoints/{ep['id']}", headers=tenant.headers)
    assert shown.json()["signature"] == "ed25519"

    got = await _delivered(api, tenant, receiver, 1)
    assert versions(got) == ["v1a", "v1"]  # newest first
    verify_v1a(public, got.headers, got.body)
    StandardWebhook(old).verify(got.body, got.headers)  # the subscriber not yet moved on
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(old).verify(got.body + b" ", got.headers)

    # when the grace period is over only the ed25519 key signs
    await expire_secret(pool, settings, ep["id"], old)
    got = await _delivered(api, tenant, receiver, 2)
    assert versions(got) == ["v1a"]
    verify_v1a(public, got.headers, got.body)


@pytest.mark.usefixtures("worker")
async def test_rotating_ed25519_keeps_the_kind_and_both_keys_sign(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver
) -> None:
    ep = await make_endpoint(api, tenant, receiver.url, signature="ed25519")
    old = (await _keys(api, tenant, ep["id"]))["key"]
    r = await api.post(f"/v1/endpoints/{ep['id']}/secret/rotate", headers=tenant.headers)
    assert r.status_code == 200 and "whsk_" not in r.text  # no body: same kind, new keypair
    keys = r.json()
    new = keys["key"]
    assert new.startswith("whpk_") and new != old and keys["signature"] == "ed25519"
    [current, replaced] = keys["public_keys"]
    assert current == {"key": new, "expires_at": None}
    assert replaced["key"] == old and _soon(replaced["expires_at"], timedelta(hours=24))

    got = await _delivered(api, tenant, receiver, 1)
    assert versions(got) == ["v1a", "v1a"]
    for public in (old, new):  # a subscriber trusting either key accepts the request
        verify_v1a(public, got.headers, got.body)
    with pytest.raises(InvalidSignature):
        verify_v1a(new, got.headers, got.body[:-1])

    # and back to HMAC: the replaced ed25519 keys stay listed while they still sign
    keys = await _rotate(api, tenant, ep["id"], signature="hmac")
    assert keys["key"].startswith("whsec_") and keys["signature"] == "hmac"
    assert [k["key"] for k in keys["public_keys"]] == [new, old]
    got = await _delivered(api, tenant, receiver, 2)
    assert versions(got) == ["v1", "v1a", "v1a"]
    StandardWebhook(keys["key"]).verify(got.body, got.headers)
    verify_v1a(new, got.headers, got.body)
    listed = await api.get(f"/v1/endpoints/{ep['id']}", headers=tenant.headers)
    assert listed.json()["signature"] == "hmac"


async def test_unknown_kinds_and_chosen_private_keys_are_refused(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "cust_1"})
    r = await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={"subscriber": "cust_1", "url": "http://127.0.0.1:9/a", "signature": "rsa"},
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["loc"] == ["body", "signature"], r.text

    ep = await make_endpoint(api, tenant, "http://127.0.0.1:9/a")
    before = await _keys(api, tenant, ep["id"])
    path, h = f"/v1/endpoints/{ep['id']}", tenant.headers
    chosen = new_private_key()
    for body, loc in (
        ({"signature": "rsa"}, ["body", "signature"]),
        ({"key": chosen}, ["body", "key"]),
        ({"key": chosen, "signature": "ed25519"}, ["body", "key"]),
        ({"key": new_signing_secret(), "signature": "ed25519"}, ["body", "key"]),
    ):
        r = await api.post(f"{path}/secret/rotate", headers=h, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["loc"][:2] == loc, (body, r.text)
        assert chosen not in r.text and "whsk_" not in r.text
    r = await api.post(f"{path}/secret/rotate", headers=h, json={"key": chosen})
    assert '"signature": "ed25519"' in r.json()["errors"][0]["msg"]  # says what to do instead
    # the kind changes only by rotation, which keeps the old key signing for a while
    r = await api.patch(path, headers=h, json={"signature": "ed25519"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "signature"]
    assert await _keys(api, tenant, ep["id"]) == before
    r = await api.post("/v1/endpoints/ep_nope/secret/rotate", headers=h, json={})
    assert r.status_code == 404
