"""Tenants, their API keys and operator users."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from hookline import secrets
from hookline.db import QUERIES, Pool, Row, row
from hookline.errors import UNKNOWN, Conflict, InvalidInput, NotFound, Problem


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


#: Tenant settings PATCH may change; a None value resets a nullable one.
SETTINGS = (
    "unknown_event_types",
    "retry_schedule",
    "delivery_timeout",
    "disable_after",
    "operational_endpoint",
    "retention",
)


async def tenant_settings(pool: Pool, tenant_id: str) -> Row:
    found = row(await pool.fetchrow(QUERIES["get_tenant_settings"], tenant_id))
    if found is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return found


async def update_tenant_settings(pool: Pool, tenant_id: str, changes: Mapping[str, Any]) -> Row:
    """Change the settings named in ``changes`` (any of :data:`SETTINGS`), leave the rest.

    ``operational_endpoint`` is the id of one of the tenant's endpoints (or None): the
    operational events (endpoint.disabled, delivery.failed, ...) go there.
    """
    from hookline.event_types import forget_catalog

    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise ValueError(f"not tenant settings: {unknown}")
    operational = changes.get("operational_endpoint")
    if operational is not None and not await pool.fetchval(
        QUERIES["endpoint_exists"], tenant_id, operational
    ):
        raise _unknown_operational_endpoint(operational)
    values = [changes.get(name) for name in SETTINGS]
    try:
        found = row(
            await pool.fetchrow(
                QUERIES["update_tenant_settings"], tenant_id, list(changes), *values
            )
        )
    except asyncpg.ForeignKeyViolationError:  # deleted since the check
        raise _unknown_operational_endpoint(operational) from None
    if found is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    forget_catalog()  # the unknown-types policy is read with the catalog
    return found


def _unknown_operational_endpoint(endpoint_id: Any) -> InvalidInput:
    msg = (
        f"no endpoint {endpoint_id!r} of this tenant; name one of your endpoints "
        "(GET /v1/endpoints), or null for none"
    )
    return InvalidInput(msg, problems=[Problem(("operational_endpoint",), msg, UNKNOWN)])
