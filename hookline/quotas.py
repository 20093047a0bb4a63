"""Quotas: how much of a thing one tenant may have, so that no tenant can grow the
installation without bound for the others (endpoints to fan out to, subscribers, event
types, replays running at once, deliveries one request may make).

The limits come from settings (``HOOKLINE_TENANT_MAX_*``; 0 means none). A count quota is
counted in the transaction that creates the thing, after taking a lock on the tenant's
row, so that concurrent creations cannot slip past it together: ``FOR NO KEY UPDATE`` does
not conflict with the key-share locks that inserts referencing the tenant take, so ingest
never waits for it.
"""

from __future__ import annotations

from typing import Literal

from hookline.db import QUERIES, Connection
from hookline.errors import Busy, QuotaExceeded

Counted = Literal["endpoints", "subscribers", "event_types"]

#: The setting behind each count quota, named in errors so an operator knows what to raise.
SETTING = {
    "endpoints": "HOOKLINE_TENANT_MAX_ENDPOINTS",
    "subscribers": "HOOKLINE_TENANT_MAX_SUBSCRIBERS",
    "event_types": "HOOKLINE_TENANT_MAX_EVENT_TYPES",
    "replays": "HOOKLINE_TENANT_MAX_REPLAYS",
    "fanout": "HOOKLINE_TENANT_MAX_FANOUT",
    "delivery_rate": "HOOKLINE_TENANT_DELIVERY_RATE",
}
_WHAT = {"endpoints": "endpoints", "subscribers": "subscribers", "event_types": "event types"}


async def make_room(conn: Connection, tenant_id: str, kind: Counted, limit: int) -> None:
    """Raise :class:`QuotaExceeded` unless the tenant may create one more ``kind``; inside
    the creating transaction (the tenant's row stays locked until it ends)."""
    if limit <= 0:
        return
    await conn.execute(QUERIES["quota_lock"], tenant_id)
    have = await conn.fetchval(QUERIES[f"quota_{kind}"], tenant_id)
    if have is not None and have >= limit:
        raise QuotaExceeded(
            f"this tenant has {have} {_WHAT[kind]}, the most it may have "
            f"({SETTING[kind]}={limit}); delete some, or ask the operator to raise it"
        )


async def make_room_for_replay(conn: Connection, tenant_id: str, limit: int) -> None:
    """Raise :class:`Busy` while the tenant has ``limit`` replays running or paused."""
    if limit <= 0:
        return
    await conn.execute(QUERIES["quota_lock"], tenant_id)
    have = await conn.fetchval(QUERIES["quota_replays"], tenant_id)
    if have is not None and have >= limit:
        raise Busy(
            f"this tenant has {have} replays running or paused, the most it may have at "
            f"once ({SETTING['replays']}={limit}); wait for one to finish or cancel one",
            retry_after=30,
        )


def fanout_refused(limit: int) -> QuotaExceeded:
    """The error for an ingest that would make more than ``limit`` deliveries at once."""
    return QuotaExceeded(
        f"these events would make more than {limit} deliveries at once, the most one "
        f"request may make ({SETTING['fanout']}); send fewer events per batch"
    )
