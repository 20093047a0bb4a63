"""Events: the outbox. Ingest commits events and all their deliveries in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hookline.db import QUERIES, Pool, Row, row
from hookline.errors import Conflict, InvalidInput, NotFound
from hookline.quotas import fanout_refused
from hookline.vault import Vault

MAX_BATCH = 1000

Loc = list[str | int]


@dataclass(frozen=True)
class Accepted:
    id: str
    created_at: datetime
    deliveries: int


_COLUMNS = (
    "id",
    "type",
    "subject",
    "url",
    "ordering_key",
    "subscriber",
    "data",
    "version",
    "expires_at",
)


async def ingest_events(
    pool: Pool | asyncpg.Connection,
    tenant_id: str,
    events: Sequence[dict[str, Any]],
    *,
    locs: Sequence[Loc] | None = None,
    only_endpoint: str | None = None,
    max_fanout: int,
) -> list[Accepted]:
    """Commit ``events`` and one delivery per endpoint that wants each: all or none.

    Each event is a dict of the fields of ``api.events.EventIn`` (missing keys mean None;
    ``version`` is the schema version already checked). ``locs[i]`` prefixes the error
    locations of event ``i`` (``["body"]`` for one event, ``["body", "events", i]`` in a
    batch). ``only_endpoint`` delivers to that endpoint alone (the endpoint test send).
    :class:`QuotaExceeded` when the events would make more than ``max_fanout`` deliveries
    (0: no limit). Durable on return.
    """
    locs = locs if locs is not None else [["body"]] * len(events)
    columns: list[list[Any]] = [[e.get(c) for e in events] for c in _COLUMNS]
    _refuse_repeated_ids(columns[0], locs)
    limit = max_fanout or None
    try:
        records = await pool.fetch(
            QUERIES["ingest_events"], tenant_id, *columns, only_endpoint, limit
        )
    except asyncpg.ForeignKeyViolationError:
        raise Conflict(
            "a subscriber or endpoint these events go to was deleted meanwhile; send again"
        ) from None
    except asyncpg.UniqueViolationError:
        taken = {
            r["producer_id"]
            for r in await pool.fetch(QUERIES["existing_producer_ids"], tenant_id, columns[0])
        }
        raise Conflict(
            "an event with this id exists already; a producer id is unique per tenant",
            errors=[
                {"loc": [*loc, "id"], "msg": f"event id {pid!r} is taken"}
                for pid, loc in zip(columns[0], locs, strict=True)
                if pid in taken
            ],
        ) from None
    if records and not records[0]["fanout_ok"]:
        raise fanout_refused(max_fanout)
    unknown = [
        {"loc": [*loc, "subscriber"], "msg": f"no subscriber {e.get('subscriber')!r}"}
        for r, e, loc in zip(records, events, locs, strict=True)
        if not r["subscriber_ok"]
    ]
    if unknown:
        raise InvalidInput("an event names a subscriber that does not exist", errors=unknown)
    return [Accepted(r["id"], r["created_at"], r["deliveries"]) for r in records]


def _refuse_repeated_ids(ids: list[Any], locs: Sequence[Loc]) -> None:
    seen: set[str] = set()
    errors = []
    for pid, loc in zip(ids, locs, strict=True):
        if pid is not None and pid in seen:
            errors.append({"loc": [*loc, "id"], "msg": f"event id {pid!r} repeats in the batch"})
        if pid is not None:
            seen.add(pid)
    if errors:
        raise Conflict("a producer event id appears twice in the batch", errors=errors)


async def ingest_event(
    pool: Pool | asyncpg.Connection,
    tenant_id: str,
    event: dict[str, Any],
    *,
    only_endpoint: str | None = None,
    max_fanout: int,
) -> Accepted:
    """One event: :func:`ingest_events` with a batch of one."""
    accepted = await ingest_events(
        pool, tenant_id, [event], only_endpoint=only_endpoint, max_fanout=max_fanout
    )
    return accepted[0]


async def get_event(pool: Pool, tenant_id: str, event_id: str) -> Row:
    found = row(await pool.fetchrow(QUERIES["get_event"], tenant_id, event_id, None))
    if found is None:
        raise NotFound(f"no event {event_id!r}")
    return found


async def event_detail(
    pool: Pool, tenant_id: str, event_id: str, subscriber_id: str | None = None
) -> Row:
    """One event with its deliveries counted by status and its latest content fetches.
    With ``subscriber_id`` (a portal session), only an event delivered to one of that
    subscriber's endpoints (else :class:`NotFound`), counting only those deliveries."""
    async with pool.acquire() as conn:
        found = row(await conn.fetchrow(QUERIES["get_event"], tenant_id, event_id, subscriber_id))
        if found is None:
            raise NotFound(f"no event {event_id!r}")
        summary = await conn.fetch(
            QUERIES["event_delivery_summary"], tenant_id, event_id, subscriber_id
        )
        fetches = await conn.fetch(QUERIES["event_fetches"], tenant_id, event_id, subscriber_id)
    found["delivery_summary"] = {r["status"]: r["n"] for r in summary}
    found["fetches"] = [dict(f) for f in fetches]
    return found


async def event_deliveries(
    pool: Pool, tenant_id: str, event_id: str, subscriber_id: str | None = None, limit: int = 200
) -> list[Row]:
    """The first ``limit`` deliveries of an event (its fan-out), with their endpoints;
    with ``subscriber_id``, only those to that subscriber's endpoints."""
    records = await pool.fetch(
        QUERIES["event_deliveries"], tenant_id, event_id, subscriber_id, limit
    )
    return [dict(r) for r in records]


async def event_fanouts(
    pool: Pool, tenant_id: str, event_ids: Sequence[str], subscriber_id: str | None = None
) -> dict[str, dict[str, int]]:
    """For each of ``event_ids``: how many of its deliveries are in each status (events
    without deliveries are left out); with ``subscriber_id``, only deliveries to that
    subscriber's endpoints count."""
    records = await pool.fetch(QUERIES["event_fanouts"], tenant_id, list(event_ids), subscriber_id)
    found: dict[str, dict[str, int]] = {}
    for r in records:
        found.setdefault(r["event_id"], {})[r["status"]] = r["n"]
    return found


async def list_events(
    pool: Pool,
    tenant_id: str,
    *,
    type_: str | None,
    subscriber: str | None,
    after: datetime | None,
    before: datetime | None,
    cursor: str | None,
    limit: int,
    subscriber_id: str | None = None,
) -> list[Row]:
    """A page of events, newest first. ``subscriber`` (a uid) keeps the events addressed
    to that subscriber; ``subscriber_id`` (a portal session) keeps those delivered to one
    of its endpoints."""
    records = await pool.fetch(
        QUERIES["list_events"],
        tenant_id,
        type_,
        subscriber,
        after,
        before,
        cursor,
        limit,
        subscriber_id,
    )
    return [dict(r) for r in records]


async def cancel_event(pool: Pool, tenant_id: str, event_id: str) -> int:
    """Cancel an event's unfinished deliveries; they are never sent. Returns how many.

    An attempt already in flight finishes (it cannot be recalled) but its result does not
    revive the delivery. The lanes are locked first, as every writer of lanes does.
    """
    async with pool.acquire() as conn, conn.transaction():
        lanes = [
            r["id"] for r in await conn.fetch(QUERIES["lock_event_lanes"], tenant_id, event_id)
        ]
        done = await conn.fetchrow(QUERIES["cancel_event"], tenant_id, event_id)
        if done is None:
            raise NotFound(f"no event {event_id!r}")
        await conn.execute(QUERIES["reschedule_lanes"], lanes)
    cancelled: int = done["cancelled"]
    return cancelled


async def event_content(pool: Pool, event_id: str, endpoint_id: str, address: str) -> Row:
    """The event behind a verified fetch link; the fetch is recorded on the event."""
    found = row(await pool.fetchrow(QUERIES["get_event_content"], event_id, endpoint_id, address))
    if found is None:
        raise NotFound("this link is not valid or has expired")
    return found


async def link_secrets(pool: Pool, vault: Vault, event_id: str, endpoint_id: str) -> list[str]:
    """The signing secrets still signing for ``endpoint_id``, if it exists and was sent
    ``event_id``: what a fetch link for them must have been made under (else empty)."""
    records = await pool.fetch(QUERIES["link_secrets"], event_id, endpoint_id)
    return [vault.open_secret(r["secret"], r["tenant_id"]) for r in records]
