"""Subscribers: the tenant's customers, each named by the tenant's own ``uid``."""

from __future__ import annotations

from hookline.db import QUERIES, Pool, Row, row
from hookline.errors import Conflict, NotFound


async def create_subscriber(pool: Pool, tenant_id: str, uid: str, name: str) -> Row:
    created = row(await pool.fetchrow(QUERIES["create_subscriber"], tenant_id, uid, name))
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
