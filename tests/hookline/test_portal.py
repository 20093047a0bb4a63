"""Portal magic links: one session each, only before they expire, stored only as hashes."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from hookline.db import Pool
from hookline.errors import NotFound
from hookline.portal import PORTAL_LOGIN_PATH, create_portal_link, redeem_portal_link
from hookline.subscribers import create_subscriber, delete_subscriber
from tests.conftest import TenantKey

PUBLIC = "https://hooks.example.com/"


async def _subscriber(pool: Pool, tenant: TenantKey, uid: str = "cust_1") -> str:
    created = await create_subscriber(pool, tenant.id, uid, "Customer", quota=0)
    return str(created["id"])


async def test_a_link_starts_one_session_for_its_subscriber(pool: Pool, tenant: TenantKey) -> None:
    subscriber_id = await _subscriber(pool, tenant)
    link = await create_portal_link(pool, tenant.id, "cust_1", public_url=PUBLIC, ttl=900)

    parts = urlsplit(link.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == PUBLIC.rstrip("/") + PORTAL_LOGIN_PATH
    assert parse_qs(parts.query)["token"] == [link.token]
    remaining = link.expires_at - datetime.now(UTC)
    assert timedelta(seconds=890) < remaining <= timedelta(seconds=900)

    assert await redeem_portal_link(pool, link.token) == (tenant.id, subscriber_id)
    with pytest.raises(NotFound, match="used already"):
        await redeem_portal_link(pool, link.token)


async def test_only_a_hash_of_the_token_is_stored(pool: Pool, tenant: TenantKey) -> None:
    await _subscriber(pool, tenant)
    link = await create_portal_link(pool, tenant.id, "cust_1", public_url=PUBLIC, ttl=900)
    stored = await pool.fetch("SELECT * FROM portal_links")
    assert len(stored) == 1
    assert stored[0]["token_hash"] == hashlib.sha256(link.token.encode()).digest()
    assert link.token.encode() not in repr(dict(stored[0])).encode()


async def test_racing_redemptions_start_one_session(pool: Pool, tenant: TenantKey) -> None:
    await _subscriber(pool, tenant)
    link = await create_portal_link(pool, tenant.id, "cust_1", public_url=PUBLIC, ttl=900)
    results = await asyncio.gather(
        *(redeem_portal_link(pool, link.token) for _ in range(8)), return_exceptions=True
    )
    assert sum(isinstance(r, tuple) for r in results) == 1
    assert all(isinstance(r, NotFound) for r in results if not isinstance(r, tuple))


async def test_an_expired_link_is_refused(pool: Pool, tenant: TenantKey) -> None:
    await _subscriber(pool, tenant)
    link = await create_portal_link(pool, tenant.id, "cust_1", public_url=PUBLIC, ttl=900)
    await pool.execute("UPDATE portal_links SET expires_at = now() - interval '1 second'")
    with pytest.raises(NotFound, match="expired"):
        await redeem_portal_link(pool, link.token)


async def test_unknown_tokens_and_subscribers(pool: Pool, tenant: TenantKey) -> None:
    with pytest.raises(NotFound, match="not valid"):
        await redeem_portal_link(pool, "hkp_made-up")
    with pytest.raises(NotFound, match="no subscriber"):
        await create_portal_link(pool, tenant.id, "nobody", public_url=PUBLIC, ttl=900)


async def test_links_die_with_their_subscriber(pool: Pool, tenant: TenantKey) -> None:
    await _subscriber(pool, tenant)
    link = await create_portal_link(pool, tenant.id, "cust_1", public_url=PUBLIC, ttl=900)
    await delete_subscriber(pool, tenant.id, "cust_1")
    with pytest.raises(NotFound):
        await redeem_portal_link(pool, link.token)


async def test_long_expired_links_are_purged_on_the_next_one(pool: Pool, tenant: TenantKey) -> None:
    await _subscriber(pool, tenant)
    await create_portal_link(pool, tenant.id, "cust_1", public_url=PUBLIC, ttl=900)
    await pool.execute("UPDATE portal_links SET expires_at = now() - interval '2 days'")
    await create_portal_link(pool, tenant.id, "cust_1", public_url=PUBLIC, ttl=900)
    assert await pool.fetchval("SELECT count(*) FROM portal_links") == 1
