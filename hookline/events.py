"""Events: the outbox. Ingest commits an event and all its deliveries in one statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hookline.db import QUERIES, Pool, Row, row
from hookline.errors import Conflict, InvalidInput, NotFound


@dataclass(frozen=True)
class Accepted:
    id: str
    created_at: datetime
    deliveries: int


async def ingest_event(pool: Pool, tenant_id: str, event: dict[str, Any]) -> Accepted:
    """Commit ``event`` and one delivery per endpoint that wants it; durable on return.

    ``event`` holds the validated fields of ``api.schemas.EventIn``; ``data`` may be JSON
    text already encoded, so a body parsed once at the edge is not encoded twice.
    """
    try:
        record = await pool.fetchrow(
            QUERIES["ingest_event"],
            tenant_id,
            event.get("id"),
            event["type"],
            event.get("subject"),
            event.get("url"),
            event.get("ordering_key"),
            event.get("subscriber"),
            event["data"],
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"an event with id {event.get('id')!r} exists already") from None
    if record is None:
        raise InvalidInput(
            f"no subscriber {event.get('subscriber')!r}",
            errors=[{"loc": ["body", "subscriber"], "msg": "unknown subscriber"}],
        )
    return Accepted(record["id"], record["created_at"], record["deliveries"])


async def get_event(pool: Pool, tenant_id: str, event_id: str) -> Row:
    found = row(await pool.fetchrow(QUERIES["get_event"], tenant_id, event_id))
    if found is None:
        raise NotFound(f"no event {event_id!r}")
    return found
