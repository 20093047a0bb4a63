"""Credentials at rest: signing secrets and credential headers are sealed in the database,
never shown, sent as they are, redacted in history, and survive a key rotation."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from composition.web import build_app
from hookline.db import Pool
from hookline.endpoint_secrets import reseal_all
from hookline.links import event_link, verify_event_link
from hookline.settings import Settings
from hookline.vault import Vault, VaultError, is_credential
from tests.api.test_endpoints import make_endpoint, send_event
from tests.conftest import TenantKey, running_worker
from tests.receiver import Receiver, wait_for

NEW_KEY = "a-new-secret-key-for-the-installation-" + "y" * 16

# -- the vault itself ----------------------------------------------------------------------


def test_a_sealed_value_opens_only_in_its_own_context_and_under_a_known_key() -> None:
    vault = Vault("k" * 40)
    sealed = vault.seal("whsec_abc", "endpoint-secret:ten_1")
    assert sealed.startswith(vault.current_prefix) and "whsec" not in sealed
    assert vault.open(sealed, "endpoint-secret:ten_1") == "whsec_abc"
    with pytest.raises(VaultError, match="does not open"):
        vault.open(sealed, "endpoint-secret:ten_2")  # moved to another tenant's row
    with pytest.raises(VaultError, match="HOOKLINE_PREVIOUS_SECRET_KEYS"):
        Vault("z" * 40).open(sealed, "endpoint-secret:ten_1")
    rotated = Vault("z" * 40, previous=["k" * 40])
    assert rotated.open(sealed, "endpoint-secret:ten_1") == "whsec_abc"
    assert not rotated.is_current(sealed)
    assert vault.open("whsec_stored_before", "endpoint-secret:ten_1") == "whsec_stored_before"


@pytest.mark.parametrize(
    ("name", "marked", "credential"),
    [
        ("Authorization", (), True),
        ("X-Api-Key", (), True),
        ("x-auth-token", (), True),
        ("Cookie", (), True),
        ("X-Client-Secret", (), True),
        ("X-Team", (), False),
        ("X-Team", ("x-team",), True),
        ("webhook-signature", (), False),
    ],
)
def test_which_headers_are_credentials(name: str, marked: tuple[str], credential: bool) -> None:
    assert is_credential(name, marked) is credential


# -- through the API and a worker ----------------------------------------------------------

HEADERS = {"Authorization": "Bearer tok-123", "X-Team": "warehouse", "X-Shard": "s-9"}


async def _stored(pool: Pool, endpoint_id: str) -> tuple[list[str], dict[str, str]]:
    secrets = await pool.fetch(
        "SELECT secret FROM endpoint_secrets WHERE endpoint_id = $1", endpoint_id
    )
    headers = await pool.fetchval("SELECT headers FROM endpoints WHERE id = $1", endpoint_id)
    return [r["secret"] for r in secrets], json.loads(headers)


async def test_credentials_are_sealed_shown_redacted_and_sent_in_clear(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey, receiver: Receiver, worker: None
) -> None:
    ep = await make_endpoint(
        api, tenant, receiver.url, headers=HEADERS, sensitive_headers=["X-Shard"]
    )
    assert ep["headers"] == {
        "Authorization": "[redacted]",
        "X-Team": "warehouse",
        "X-Shard": "[redacted]",
    }
    secrets, headers = await _stored(pool, ep["id"])
    dump = json.dumps([secrets, headers])
    assert "whsec_" not in dump and "tok-123" not in dump and "s-9" not in dump
    assert headers["X-Team"] == "warehouse"  # not a credential: kept as it is

    key = (await api.get(f"/v1/endpoints/{ep['id']}/secret", headers=tenant.headers)).json()
    assert key["key"].startswith("whsec_")
    event_id = await send_event(api, tenant)
    await wait_for(lambda: len(receiver.requests) == 1)
    got = receiver.requests[0]
    assert got.headers["authorization"] == "Bearer tok-123" and got.headers["x-shard"] == "s-9"
    Webhook(key["key"]).verify(got.body, got.headers)

    async def recorded() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM attempts"))

    await wait_for(recorded, what="the attempt recorded")
    history = json.loads(await pool.fetchval("SELECT request_headers FROM attempts"))
    assert history["authorization"] == "[redacted]" and history["x-shard"] == "[redacted]"
    assert history["x-team"] == "warehouse" and history["webhook-id"] == event_id


async def test_sending_back_what_was_shown_keeps_the_stored_credential(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    ep = await make_endpoint(api, tenant, "http://127.0.0.1:9/hook", headers=HEADERS)
    path = f"/v1/endpoints/{ep['id']}"
    shown = (await api.get(path, headers=tenant.headers)).json()["headers"]
    r = await api.patch(path, headers=tenant.headers, json={"headers": {**shown, "X-New": "1"}})
    assert r.status_code == 200, r.text
    vault = Vault("test-secret-key-" + "x" * 32)
    _, stored = await _stored(pool, ep["id"])
    opened = vault.open_headers(stored, tenant.id)
    assert opened == {**HEADERS, "X-New": "1"}

    r = await api.patch(path, headers=tenant.headers, json={"headers": {"X-Api-Key": "[redacted]"}})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "headers", "X-Api-Key"]

    # marking a header sensitive later seals the value already stored
    r = await api.patch(path, headers=tenant.headers, json={"sensitive_headers": ["x-team"]})
    assert r.status_code == 200 and r.json()["headers"]["X-Team"] == "[redacted]"
    _, stored = await _stored(pool, ep["id"])
    assert stored["X-Team"].startswith("hlv1:")
    assert vault.open_headers(stored, tenant.id)["X-Team"] == "warehouse"


@pytest.mark.parametrize(
    "value",
    ["caf\u00e9", "a\x00b", "line\rbreak", "tab\x7f", " leading", "trailing "],
)
async def test_header_values_must_be_sendable(
    api: httpx.AsyncClient, tenant: TenantKey, value: str
) -> None:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    r = await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={"subscriber": "c", "url": "http://127.0.0.1:9/h", "headers": {"X-A": value}},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"][:3] == ["body", "headers", "X-A"]


async def test_header_names_may_not_repeat_in_another_case(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    r = await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={
            "subscriber": "c",
            "url": "http://127.0.0.1:9/h",
            "headers": {"X-A": "1", "x-a": "2"},
        },
    )
    assert r.status_code == 422 and "not case-sensitive" in r.text


async def test_a_key_rotation_then_reencrypt_moves_every_credential_to_the_new_key(
    api: httpx.AsyncClient,
    pool: Pool,
    redis: Redis,
    settings: Settings,
    tenant: TenantKey,
    receiver: Receiver,
) -> None:
    ep = await make_endpoint(api, tenant, receiver.url, headers=HEADERS)
    key = (await api.get(f"/v1/endpoints/{ep['id']}/secret", headers=tenant.headers)).json()
    # a row from before sealing existed: plain text
    legacy = await make_endpoint(api, tenant, receiver.url, uid="cust_2")
    plain = "whsec_" + base64.b64encode(b"p" * 32).decode()
    await pool.execute(
        "UPDATE endpoint_secrets SET secret = $2 WHERE endpoint_id = $1", legacy["id"], plain
    )

    assert settings.secret_key is not None
    rotated = settings.model_copy(
        update={"secret_key": NEW_KEY, "previous_secret_keys": [settings.secret_key]}
    )
    vault = Vault.from_settings(rotated)
    done = await reseal_all(pool, vault)
    assert done == (2, 1)  # both endpoints' secrets; the first one's headers
    assert await reseal_all(pool, vault) == (0, 0)  # nothing left to do
    secrets, headers = await _stored(pool, ep["id"])
    assert all(vault.is_current(s) for s in secrets) and vault.is_current(headers["Authorization"])
    legacy_secrets, _ = await _stored(pool, legacy["id"])
    assert vault.is_current(legacy_secrets[0])

    # the old key is gone for good: everything still opens and signs as before
    new_only = rotated.model_copy(update={"previous_secret_keys": []})
    app = build_app(new_only, pool, redis)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as fresh:
        again = await fresh.get(f"/v1/endpoints/{ep['id']}/secret", headers=tenant.headers)
        assert again.json()["key"] == key["key"]
        shown = await fresh.get(f"/v1/endpoints/{legacy['id']}/secret", headers=tenant.headers)
        assert shown.json()["key"] == plain
        async with running_worker(new_only, pool, redis):
            await send_event(api, tenant)
            await wait_for(lambda: len(receiver.requests) == 2)
    first = next(r for r in receiver.requests if r.headers.get("authorization"))
    assert first.headers["authorization"] == "Bearer tok-123"
    Webhook(key["key"]).verify(first.body, first.headers)


async def test_fetch_links_die_with_their_secret_and_their_endpoint(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey, receiver: Receiver, worker: None
) -> None:
    ep = await make_endpoint(api, tenant, receiver.url)

    async def link_of_next_event() -> httpx.URL:
        await send_event(api, tenant)
        count = len(receiver.requests) + 1
        await wait_for(lambda: len(receiver.requests) == count)
        return httpx.URL(json.loads(receiver.requests[-1].body)["links"]["event"])

    async def fetch(link: httpx.URL) -> int:
        return (await api.get(link.path, params=dict(link.params))).status_code

    old = await link_of_next_event()
    assert await fetch(old) == 200
    r = await api.post(f"/v1/endpoints/{ep['id']}/secret/rotate", headers=tenant.headers)
    assert r.status_code == 200
    assert await fetch(old) == 200  # the replaced secret still signs: its links still work
    await pool.execute(
        "UPDATE endpoint_secrets SET expires_at = now() WHERE expires_at IS NOT NULL"
    )
    assert await fetch(old) == 404  # its grace period is over: so are its links

    new = await link_of_next_event()
    assert await fetch(new) == 200
    other = await make_endpoint(api, tenant, "http://127.0.0.1:9/other", uid="cust_2")
    forged = dict(new.params) | {"endpoint": other["id"]}  # a link for an endpoint never sent it
    assert (await api.get(new.path, params=forged)).status_code == 404
    assert (await api.delete(f"/v1/endpoints/{ep['id']}", headers=tenant.headers)).status_code
    assert await fetch(new) == 404


def test_a_link_made_under_a_previous_installation_key_verifies_while_it_is_listed() -> None:
    url = httpx.URL(
        event_link("http://h", "old-key", "evt_1", "ep_1", 60, time.time(), "whsec_current")
    )
    q = url.params
    args = ("evt_1", "ep_1", q["expires"], q["sig"])
    assert verify_event_link(["new-key", "old-key"], *args, ["whsec_current"])
    assert not verify_event_link(["new-key"], *args, ["whsec_current"])
    assert not verify_event_link(["new-key", "old-key"], *args, ["whsec_rotated"])
