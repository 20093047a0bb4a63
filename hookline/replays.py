"""Replays: re-sending deliveries in bulk by filter, as rate-limited jobs.

A replay re-queues a tenant's deliveries that match its filter (endpoint, event types,
statuses, a time range of ingest) for one immediate attempt each, as a manual retry does.
With ``missed`` it also gives one endpoint a delivery of every event since a time that the
endpoint would receive but never got (ingested while it was disabled, or before it
existed), numbered at the end of its lanes as ingest numbers new ones.

The job is run by workers (``delivery/replayer.py``) a chunk at a time at the replay's rate,
so a large replay never floods the lanes live deliveries go through. Each chunk queues its
deliveries and records the progress in one transaction, so a worker dying anywhere neither
repeats nor skips one. Nothing ingested after the replay was created is part of it.

States: ``running`` -> ``paused`` <-> ``running`` -> ``done``; ``running`` or ``paused``
-> ``cancelled``. ``done`` and ``cancelled`` are final.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import asyncpg
from pydantic import Field

from hookline.db import QUERIES, Pool, Row, row
from hookline.endpoint_fields import EVENT_TYPES_MAX
from hookline.errors import REQUIRED, Conflict, InvalidInput, NotFound, Problem
from hookline.fields import WHOLE, Name
from hookline.quotas import make_room_for_replay

#: Statuses of deliveries a replay may re-queue (succeeded ones are sent again).
Replayable = Literal["failed", "cancelled", "succeeded"]
STATUSES: tuple[str, ...] = get_args(Replayable)
#: What a replay re-queues unless it names statuses.
DEFAULT_STATUSES: tuple[Replayable, ...] = ("failed",)
#: Most deliveries a replay queues per second.
MAX_RATE = 1000

# what a replay's filter and rate may be, for the API's models and the dashboard's form
ReplayTypes = Annotated[list[Name], Field(min_length=1, max_length=EVENT_TYPES_MAX)]
ReplayStatuses = Annotated[list[Replayable], Field(max_length=len(STATUSES))]
ReplayRate = Annotated[int, Field(ge=1, le=MAX_RATE), WHOLE]

# action -> (the state it leads to, the states it may start from)
_MOVES = {
    "pause": ("paused", ("running", "paused")),
    "resume": ("running", ("paused", "running")),
    "cancel": ("cancelled", ("running", "paused")),
}


@dataclass(frozen=True)
class ReplayFilter:
    """What a replay sends again. ``endpoint`` None: every endpoint of the tenant."""

    endpoint: str | None = None
    types: Sequence[str] | None = None
    statuses: Sequence[str] = DEFAULT_STATUSES
    since: datetime | None = None
    until: datetime | None = None
    missed: bool = False

    def check(self) -> None:
        """Raise :class:`InvalidInput` (saying which fields) if the filter makes no sense."""
        problems: list[tuple[str, str]] = []  # (field, what is wrong)
        unknown = sorted(set(self.statuses) - set(STATUSES))
        if unknown:
            problems.append(
                ("statuses", f"not replayable: {', '.join(unknown)}; one of {', '.join(STATUSES)}")
            )
        if not self.statuses and not self.missed:
            problems.append(("statuses", "empty, and missed is false: nothing to replay"))
        if self.since is not None and self.until is not None and self.since >= self.until:
            problems.append(("until", "must be later than since"))
        if self.missed and self.since is None:
            problems.append(("since", "required with missed: when the endpoint began to miss"))
        if self.missed and self.endpoint is None:
            problems.append(("endpoint", "required with missed: one endpoint misses events"))
        if problems:
            raise InvalidInput(
                "the replay filter is not valid; see errors",
                problems=[Problem((name,), msg) for name, msg in problems],
            )

    @property
    def status_list(self) -> list[str]:
        return sorted(set(self.statuses))

    @property
    def type_list(self) -> list[str] | None:
        return None if self.types is None else sorted(set(self.types))

    def _args(self, tenant_id: str) -> tuple[Any, ...]:
        return (
            tenant_id,
            self.endpoint,
            self.status_list,
            self.type_list,
            self.since,
            self.until,
            self.missed,
        )


def _check_scope(f: ReplayFilter, subscriber_id: str | None) -> None:
    """A subscriber replays one of its own endpoints, never the whole tenant."""
    f.check()
    if subscriber_id is not None and f.endpoint is None:
        raise InvalidInput(
            "name the endpoint to replay: a subscriber replays one endpoint at a time",
            problems=[Problem(("endpoint",), "required", REQUIRED)],
        )


async def _require_endpoint(
    pool: Pool, tenant_id: str, f: ReplayFilter, subscriber_id: str | None
) -> None:
    if f.endpoint is not None and not await pool.fetchval(
        QUERIES["replay_endpoint_visible"], tenant_id, f.endpoint, subscriber_id
    ):
        raise NotFound(f"no endpoint {f.endpoint!r}")


async def count_replay(
    pool: Pool, tenant_id: str, f: ReplayFilter, subscriber_id: str | None = None
) -> int:
    """The dry run: how many deliveries a replay with this filter would queue now.

    Raises :class:`NotFound` for an endpoint the tenant (or, with ``subscriber_id``, that
    subscriber) does not have; a subscriber must name an endpoint."""
    _check_scope(f, subscriber_id)
    await _require_endpoint(pool, tenant_id, f, subscriber_id)
    count: int = await pool.fetchval(QUERIES["count_replay"], *f._args(tenant_id))
    return count


async def create_replay(
    pool: Pool,
    tenant_id: str,
    f: ReplayFilter,
    rate: int,
    subscriber_id: str | None = None,
    *,
    quota: int,
) -> Row:
    """Start a replay job at ``rate`` deliveries per second; a worker picks it up.

    Its ``total`` is what :func:`count_replay` would say at this moment. With
    ``subscriber_id``, only of one endpoint of that subscriber's. :class:`Busy` while the
    tenant has ``quota`` replays running or paused (0: no limit)."""
    _check_scope(f, subscriber_id)
    if not 1 <= rate <= MAX_RATE:
        raise InvalidInput(
            f"rate is 1 to {MAX_RATE} deliveries per second",
            problems=[Problem(("rate",), f"1 to {MAX_RATE}")],
        )
    try:
        async with pool.acquire() as conn, conn.transaction():
            await make_room_for_replay(conn, tenant_id, quota)
            created = row(
                await conn.fetchrow(
                    QUERIES["create_replay"], *f._args(tenant_id), rate, subscriber_id
                )
            )
    except asyncpg.ForeignKeyViolationError:  # the endpoint was deleted meanwhile
        created = None
    if created is None:
        raise NotFound(f"no endpoint {f.endpoint!r}")
    return created


async def get_replay(
    pool: Pool, tenant_id: str, replay_id: str, subscriber_id: str | None = None
) -> Row:
    """One replay; with ``subscriber_id``, only one of that subscriber's endpoints."""
    found = row(await pool.fetchrow(QUERIES["get_replay"], tenant_id, replay_id, subscriber_id))
    if found is None:
        raise NotFound(f"no replay {replay_id!r}")
    return found


async def list_replays(
    pool: Pool,
    tenant_id: str,
    *,
    endpoint: str | None,
    state: str | None,
    cursor: str | None,
    limit: int,
    subscriber_id: str | None = None,
) -> list[Row]:
    records = await pool.fetch(
        QUERIES["list_replays"], tenant_id, endpoint, state, cursor, limit, subscriber_id
    )
    return [dict(r) for r in records]


async def change_replay(
    pool: Pool, tenant_id: str, replay_id: str, action: str, subscriber_id: str | None = None
) -> Row:
    """``pause``, ``resume`` or ``cancel`` a replay; a worker sees it before its next chunk.

    Pausing a paused replay or resuming a running one changes nothing; a finished replay
    (done or cancelled) cannot be changed: :class:`Conflict`. With ``subscriber_id``, only
    a replay of that subscriber's endpoints (else :class:`NotFound`)."""
    state, sources = _MOVES[action]
    changed = row(
        await pool.fetchrow(
            QUERIES["set_replay_state"], tenant_id, replay_id, state, sources, subscriber_id
        )
    )
    if changed is not None:
        return changed
    current = await get_replay(pool, tenant_id, replay_id, subscriber_id)
    raise Conflict(
        f"replay {replay_id} is {current['state']}, so it cannot {action}; "
        "a finished replay stays finished: start a new one to send more"
    )
