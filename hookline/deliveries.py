"""Deliveries (one event to one endpoint) and their attempts, as producers see them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from hookline.db import QUERIES, Pool, Row, row
from hookline.errors import Conflict, NotFound

DeliveryStatus = Literal["pending", "retrying", "succeeded", "failed", "cancelled"]
STATUSES: tuple[str, ...] = get_args(DeliveryStatus)
#: What a list of deliveries may be filtered by: the class of the last attempt's answer.
StatusClass = Literal["1xx", "2xx", "3xx", "4xx", "5xx", "none"]
#: Each class as ``list_deliveries`` takes it: the status's hundreds, 0 for no answer.
STATUS_CLASSES: dict[str, int] = {
    name: 0 if name == "none" else int(name[0]) for name in get_args(StatusClass)
}


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
    event_type: str | None = None,
    subscriber_id: str | None = None,
) -> list[Row]:
    """``status_class`` filters by the last HTTP status: 2 for 2xx ... 5 for 5xx, 0 for
    attempts that got no answer (timeouts, refused connections). ``subscriber_id`` keeps
    only the deliveries to that subscriber's endpoints (a portal session)."""
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
        event_type,
        subscriber_id,
    )
    return [dict(r) for r in records]


async def event_of_producer_id(pool: Pool, tenant_id: str, producer_id: str) -> str | None:
    """The id of the event the producer sent with its own id ``producer_id``, if any."""
    found: str | None = await pool.fetchval(QUERIES["event_of_producer_id"], tenant_id, producer_id)
    return found


async def get_delivery(
    pool: Pool, tenant_id: str, delivery_id: str, subscriber_id: str | None = None
) -> Row:
    """One delivery with every attempt, first to last; with ``subscriber_id``, only if it
    goes to one of that subscriber's endpoints (else :class:`NotFound`)."""
    async with pool.acquire() as conn:
        found = row(
            await conn.fetchrow(QUERIES["get_delivery"], tenant_id, delivery_id, subscriber_id)
        )
        if found is None:
            raise NotFound(f"no delivery {delivery_id!r}")
        attempts = await conn.fetch(QUERIES["list_attempts"], tenant_id, delivery_id)
    found["attempts_list"] = [dict(a) for a in attempts]
    return found


async def retry_delivery(
    pool: Pool,
    tenant_id: str,
    delivery_id: str,
    schedule: list[float],
    subscriber_id: str | None = None,
) -> Row:
    """Give a failed or cancelled delivery one more immediate attempt; with
    ``subscriber_id``, only one to that subscriber's endpoints (else :class:`NotFound`).
    ``schedule`` is the installation's retry schedule (HOOKLINE_RETRY_SCHEDULE).

    The lane is locked first, as every writer of lanes does, so this cannot deadlock with
    an ingest or a worker recording results.
    """
    # an endpoint never changes subscriber, so checking before the transaction holds
    if subscriber_id is not None and not await pool.fetchrow(
        QUERIES["get_delivery"], tenant_id, delivery_id, subscriber_id
    ):
        raise NotFound(f"no delivery {delivery_id!r}")
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(QUERIES["lock_delivery_lane"], tenant_id, delivery_id) is None:
            raise NotFound(f"no delivery {delivery_id!r}")
        woken = await conn.fetchval(QUERIES["retry_delivery"], tenant_id, delivery_id, schedule)
        if woken is None:
            current = await conn.fetchrow(QUERIES["get_delivery"], tenant_id, delivery_id, None)
            status = current["status"] if current else "gone"
            raise Conflict(
                f"delivery {delivery_id} is not failed or cancelled (it is {status}); "
                "only those can be retried"
            )
    return await get_delivery(pool, tenant_id, delivery_id, subscriber_id)
