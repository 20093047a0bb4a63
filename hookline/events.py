"""Events: the outbox. Ingest commits events and all their deliveries in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from pydantic import Field

from hookline import lanes
from hookline.db import QUERIES, Pool, Row, row
from hookline.errors import (
    TAKEN,
    UNKNOWN,
    Conflict,
    HooklineError,
    InvalidInput,
    NotFound,
    Path,
    Problem,
)
from hookline.fields import WHOLE
from hookline.quotas import fanout_refused
from hookline.vault import Vault

MAX_BATCH = 1000
EVENT_TEXT_MAX = 500  # a subject's, an ordering key's characters

# what an event's own fields may be (names, URLs and moments are hookline/fields.py's)
Subject = Annotated[str, Field(min_length=1, max_length=EVENT_TEXT_MAX)]
OrderingKey = Annotated[str, Field(min_length=1, max_length=EVENT_TEXT_MAX)]
#: The schema version an event asks for: 1 or more (the type's versions say how many).
VersionRef = Annotated[int, Field(ge=1), WHOLE]

Loc = Path  # where an event is in the caller's input: () alone, ("events", i) in a batch


@dataclass(frozen=True)
class Accepted:
    id: str
    created_at: datetime
    deliveries: int


@dataclass(frozen=True)
class Written:
    """What the ingest statement did with one event (see ``ingest_events`` in events.sql)."""

    id: str
    created_at: datetime | None  # None: not written
    subscriber_ok: bool
    fanout: int  # deliveries its request would make
    request_ok: bool
    taken: bool  # its producer id is taken
    deliveries: int

    def accepted(self) -> Accepted:
        assert self.created_at is not None
        return Accepted(self.id, self.created_at, self.deliveries)


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


async def write_events(
    pool: Pool | asyncpg.Connection,
    tenant_id: str,
    events: Sequence[dict[str, Any]],
    requests: Sequence[int],
    *,
    only_endpoint: str | None = None,
    max_fanout: int,
    unsure: list[int] | None = None,
) -> list[Written]:
    """One ingest statement for the events of one or more requests (``requests[i]`` is the
    request of event ``i``); each request is written or left out on its own. Durable on
    return. A request of several events whose producer ids are partly taken raises
    ``asyncpg.UniqueViolationError`` and nothing is written; an endpoint or subscriber
    deleted meanwhile raises :class:`Conflict`.

    Each event is a dict of the fields of ``api.events.EventIn`` (missing keys mean None;
    ``version`` is the schema version already checked). ``only_endpoint`` delivers to that
    endpoint alone (the endpoint test send); ``max_fanout`` caps each request's deliveries
    (0: no limit). The lanes to look at again after the commit (:mod:`hookline.lanes`)
    are woken here before returning, or, given ``unsure``, added to it for the caller to
    wake once it has committed (``pool`` is then a connection in the caller's transaction,
    or the caller would rather answer first).
    """
    columns: list[list[Any]] = [[e.get(c) for e in events] for c in _COLUMNS]
    try:
        records = await pool.fetch(
            QUERIES["ingest_events"],
            tenant_id,
            *columns,
            only_endpoint,
            max_fanout or None,
            list(requests),
        )
    except asyncpg.ForeignKeyViolationError:
        raise Conflict(
            "a subscriber or endpoint these events go to was deleted meanwhile; send again"
        ) from None
    if records:
        if unsure is None:
            await lanes.wake(pool, records[0]["unsure"])
        else:
            unsure += records[0]["unsure"]
    return [
        Written(
            r["id"],
            r["created_at"],
            r["subscriber_ok"],
            r["fanout"],
            r["request_ok"],
            r["taken"],
            r["deliveries"],
        )
        for r in records
    ]


def refusal(
    written: Sequence[Written],
    events: Sequence[dict[str, Any]],
    locs: Sequence[Loc],
    max_fanout: int,
) -> HooklineError | None:
    """Why one request's events were not written, as the error to answer with; None when
    they all were."""
    if written and not written[0].request_ok and max_fanout and written[0].fanout > max_fanout:
        return fanout_refused(max_fanout)
    unknown = [
        Problem((*loc, "subscriber"), f"no subscriber {e.get('subscriber')!r}", UNKNOWN)
        for w, e, loc in zip(written, events, locs, strict=True)
        if not w.subscriber_ok
    ]
    if unknown:
        return InvalidInput("an event names a subscriber that does not exist", problems=unknown)
    taken = [e.get("id") for w, e in zip(written, events, strict=True) if w.taken]
    if taken:
        return _taken(set(taken), events, locs)
    return None


def _taken(taken: set[Any], events: Sequence[dict[str, Any]], locs: Sequence[Loc]) -> Conflict:
    return Conflict(
        "an event with this id exists already; a producer id is unique per tenant",
        problems=[
            Problem((*loc, "id"), f"event id {e.get('id')!r} is taken", TAKEN)
            for e, loc in zip(events, locs, strict=True)
            if e.get("id") in taken
        ],
    )


async def ingest_events(
    pool: Pool | asyncpg.Connection,
    tenant_id: str,
    events: Sequence[dict[str, Any]],
    *,
    locs: Sequence[Loc] | None = None,
    only_endpoint: str | None = None,
    max_fanout: int,
    unsure: list[int] | None = None,
) -> list[Accepted]:
    """Commit ``events`` (one request) and one delivery per endpoint that wants each: all
    or none. Durable on return.

    ``locs[i]`` is where event ``i`` is in the caller's input, the start of its problems'
    paths (``()`` for one event, ``("events", i)`` in a batch). :class:`QuotaExceeded`
    when the events would make more than ``max_fanout`` deliveries (0: no limit);
    :class:`InvalidInput` for an unknown subscriber; :class:`Conflict` for a producer id
    already taken. ``unsure``: as for :func:`write_events`.
    """
    locs = locs if locs is not None else [()] * len(events)
    _refuse_repeated_ids([e.get("id") for e in events], locs)
    try:
        written = await write_events(
            pool,
            tenant_id,
            events,
            [0] * len(events),
            only_endpoint=only_endpoint,
            max_fanout=max_fanout,
            unsure=unsure,
        )
    except asyncpg.UniqueViolationError:
        ids = [e.get("id") for e in events]
        taken = {
            r["producer_id"]
            for r in await pool.fetch(QUERIES["existing_producer_ids"], tenant_id, ids)
        }
        raise _taken(taken, events, locs) from None
    error = refusal(written, events, locs, max_fanout)
    if error is not None:
        raise error
    return [w.accepted() for w in written]


def _refuse_repeated_ids(ids: list[Any], locs: Sequence[Loc]) -> None:
    seen: set[str] = set()
    problems = []
    for pid, loc in zip(ids, locs, strict=True):
        if pid is not None and pid in seen:
            problems.append(Problem((*loc, "id"), f"event id {pid!r} repeats in the batch", TAKEN))
        if pid is not None:
            seen.add(pid)
    if problems:
        raise Conflict("a producer event id appears twice in the batch", problems=problems)


async def ingest_event(
    pool: Pool | asyncpg.Connection,
    tenant_id: str,
    event: dict[str, Any],
    *,
    only_endpoint: str | None = None,
    max_fanout: int,
) -> Accepted:
    """One event alone: :func:`ingest_events` with a batch of one. The API's single-event
    route goes through :class:`hookline.group_commit.GroupCommit` instead."""
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
        held = [r["id"] for r in await conn.fetch(QUERIES["lock_event_lanes"], tenant_id, event_id)]
        done = await conn.fetchrow(QUERIES["cancel_event"], tenant_id, event_id)
        if done is None:
            raise NotFound(f"no event {event_id!r}")
        empty = await lanes.reschedule(conn, held)
    await lanes.wake(pool, empty)
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
