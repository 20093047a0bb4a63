"""Deliveries (one event to one endpoint) and their attempts, as producers see them."""

from __future__ import annotations

from datetime import datetime

from hookline.db import QUERIES, Pool, Row, row
from hookline.errors import Conflict, NotFound


async def list_deliveries(
    pool: Pool,
    tenant_id: str,
    *,
    endpoint: str | None,
    event: str | None,
    status: str | None,
    cursor: str | None,
    limit: int,
    after: datetime | None = None,
    before: datetime | None = None,
    status_class: int | None = None,
) -> list[Row]:
    """``status_class`` filters by the last HTTP status: 2 for 2xx ... 5 for 5xx, 0 for
    attempts that got no answer (timeouts, refused connections)."""
    records = await pool.fetch(
        QUERIES["list_deliveries"],
        tenant_id,
        endpoint,
        event,
        status,
        cursor,
        limit,
        after,
        before,
        status_class,
    )
    return [dict(r) for r in records]


async def get_delivery(pool: Pool, tenant_id: str, delivery_id: str) -> Row:
    """One delivery with every attempt, first to last."""
    async with pool.acquire() as conn:
        found = row(await conn.fetchrow(QUERIES["get_delivery"], tenant_id, delivery_id))
        if found is None:
            raise NotFound(f"no delivery {delivery_id!r}")
        attempts = await conn.fetch(QUERIES["list_attempts"], tenant_id, delivery_id)
    found["attempts_list"] = [dict(a) for a in attempts]
    return found


async def retry_delivery(pool: Pool, tenant_id: str, delivery_id: str, schedule_len: int) -> Row:
    """Give a failed or cancelled delivery one more immediate attempt.

    The lane is locked first, as every writer of lanes does, so this cannot deadlock with
    an ingest or a worker recording results.
    """
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(QUERIES["lock_delivery_lane"], tenant_id, delivery_id) is None:
            raise NotFound(f"no delivery {delivery_id!r}")
        woken = await conn.fetchval(QUERIES["retry_delivery"], tenant_id, delivery_id, schedule_len)
        if woken is None:
            current = await conn.fetchrow(QUERIES["get_delivery"], tenant_id, delivery_id)
            status = current["status"] if current else "gone"
            raise Conflict(
                f"delivery {delivery_id} is not failed or cancelled (it is {status}); "
                "only those can be retried"
            )
    return await get_delivery(pool, tenant_id, delivery_id)
