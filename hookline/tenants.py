"""Tenants, their API keys and operator users."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from hookline import secrets
from hookline.db import QUERIES, Pool
from hookline.errors import Conflict, InvalidInput


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str


async def create_tenant(pool: Pool, name: str) -> tuple[Tenant, str]:
    """A new tenant and its first API key (returned once, stored only as a hash)."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput("a tenant name is 1 to 200 characters")
    key = secrets.new_api_key()
    async with pool.acquire() as conn, conn.transaction():
        record = await conn.fetchrow(QUERIES["create_tenant"], name)
        assert record is not None
        await conn.execute(
            QUERIES["create_api_key"],
            record["id"],
            secrets.api_key_hash(key),
            secrets.api_key_display(key),
        )
    return Tenant(record["id"], record["name"]), key


async def tenant_for_key(pool: Pool, key: str) -> Tenant | None:
    record = await pool.fetchrow(QUERIES["tenant_for_key"], secrets.api_key_hash(key))
    return None if record is None else Tenant(record["id"], record["name"])


async def create_user(pool: Pool, tenant_id: str, email: str, password: str) -> str:
    """An operator login for a tenant; returns the user id."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise InvalidInput(f"{email!r} is not an email address")
    if len(password) < 8:
        raise InvalidInput("a password is at least 8 characters")
    if await pool.fetchrow(QUERIES["get_tenant"], tenant_id) is None:
        raise InvalidInput(f"no tenant {tenant_id}; create one with `hookline tenant create`")
    try:
        record = await pool.fetchrow(
            QUERIES["create_user"], tenant_id, email, secrets.hash_password(password)
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a user with email {email} exists already") from None
    assert record is not None
    return str(record["id"])
