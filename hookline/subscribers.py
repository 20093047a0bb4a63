"""Subscribers: the tenant's customers, each named by the tenant's own ``uid``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import asyncpg
from pydantic import Field

from hookline.db import QUERIES, Pool, Row, row
from hookline.endpoints import delete_stopped_endpoints
from hookline.errors import Conflict, NotFound
from hookline.quotas import make_room

#: Fields of a subscriber that :func:`update_subscriber` may change.
PATCHABLE = ("uid", "name")

#: A name to show for a subscriber (its ``uid`` is a :data:`hookline.fields.Name`).
SubscriberName = Annotated[str, Field(max_length=200, description="A name to show for it.")]


async def create_subscriber(pool: Pool, tenant_id: str, uid: str, name: str, *, quota: int) -> Row:
    """A new subscriber; :class:`Conflict` if the uid is taken, :class:`QuotaExceeded` when
    the tenant has ``quota`` subscribers already (0: no limit)."""
    async with pool.acquire() as conn, conn.transaction():
        await make_room(conn, tenant_id, "subscribers", quota)
        created = row(await conn.fetchrow(QUERIES["create_subscriber"], tenant_id, uid, name))
    if created is None:
        raise Conflict(f"subscriber {uid!r} exists already")
    return created


async def get_subscriber(pool: Pool, tenant_id: str, uid: str) -> Row:
    found = row(await pool.fetchrow(QUERIES["get_subscriber"], tenant_id, uid))
    if found is None:
        raise NotFound(f"no subscriber {uid!r}")
    return found


async def list_subscribers(pool: Pool, tenant_id: str, cursor: str | None, limit: int) -> list[Row]:
    records = await pool.fetch(QUERIES["list_subscribers"], tenant_id, cursor, limit)
    return [dict(r) for r in records]


async def update_subscriber(
    pool: Pool, tenant_id: str, uid: str, changes: Mapping[str, Any]
) -> Row:
    """Change the fields in ``changes`` (``uid``, ``name``) and leave the others.

    A new ``uid`` renames the subscriber everywhere at once (events and endpoints refer to
    it by its internal id); it must not be taken by another subscriber of the tenant.
    """
    unknown = sorted(set(changes) - set(PATCHABLE))
    if unknown:
        raise ValueError(f"not fields a subscriber update may change: {unknown}")
    try:
        updated = row(
            await pool.fetchrow(
                QUERIES["update_subscriber"],
                tenant_id,
                uid,
                list(changes),
                changes.get("uid"),
                changes.get("name"),
            )
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"subscriber {changes.get('uid')!r} exists already") from None
    if updated is None:
        raise NotFound(f"no subscriber {uid!r}")
    return updated


async def delete_subscriber(pool: Pool, tenant_id: str, uid: str) -> None:
    """Delete a subscriber, its endpoints and their deliveries; its events stay.

    Pending deliveries to its endpoints are never sent once this returns (the endpoints
    are stopped and the delete waits out requests in flight, see
    :func:`hookline.endpoints.delete_stopped_endpoints`).
    """
    found = await get_subscriber(pool, tenant_id, uid)
    if not await delete_stopped_endpoints(pool, tenant_id, subscriber_id=found["id"]):
        raise NotFound(f"no subscriber {uid!r}")
