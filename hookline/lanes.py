"""Lanes: the ordering units workers lease, the order they are locked in, and how none is
left with work and no due time.

Every transaction that locks several lanes takes them in (endpoint_id, key) order
(:func:`lock`, or a statement sorting them the same), and a lane's tail before the lane,
so none deadlocks with another.

A lane's ``ready_at`` is what makes a worker look at it; NULL means it has nothing to send.
Ingest numbers a lane's deliveries under a lock on the lane's *tail* (``lane_tails``) held
to its commit, not on the lane itself, so a worker can lease a lane and record what its
attempts did while an ingest into the same lane is running: a hot endpoint's ingest does
not queue behind its deliveries. Ingest schedules a lane itself only when its statement
saw the lane idle.

The price is a race with every statement that finds a lane empty and sets ``ready_at`` to
NULL (a release after the lane's last delivery, a lease that found nothing, a
cancellation): it may run while an ingest's delivery into that lane is not committed yet,
so it does not see it, and the ingest did not see the lane idle either. Both sides
therefore look again after their commit (:func:`wake`). Say the ingest commits at t1 and
the emptying statement at t2. If t2 < t1, the ingest's look (after t1) sees the lane idle
and its delivery; if t1 < t2, the other side's look (after t2) sees the delivery. Either
way the lane is scheduled. A process that dies between its commit and its look leaves the
lane to :func:`wake_stranded`, which workers run every half minute.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import asyncpg

from hookline.db import QUERIES, Executor, Pool

log = logging.getLogger(__name__)


async def lock(conn: Executor, lanes: list[int]) -> None:
    """Lock ``lanes`` for the caller's transaction, in the order every writer of lanes
    uses, before changing their deliveries."""
    await conn.execute(QUERIES["lock_lanes"], lanes)


async def wake(conn: Executor, lanes: Iterable[int | None]) -> int:
    """After a commit that may have raced an ingest: schedule those of ``lanes`` that have
    something to send but no due time. Returns how many needed it (usually none).

    Never raises for the database: what came before is committed and must be answered as
    such, and a look that fails is :func:`wake_stranded`'s to make up for."""
    ids = [lane for lane in lanes if lane is not None]
    if not ids:
        return 0
    try:
        return len(await conn.fetch(QUERIES["wake_lanes"], ids))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        log.warning("could not look at %d lanes again (%s); the next sweep will", len(ids), exc)
        return 0


async def reschedule(conn: Executor, lanes: list[int]) -> list[int]:
    """Point the idle ones of ``lanes`` (locked by the caller's transaction) at their head
    after deliveries in them were cancelled or revived. Returns the lanes found empty: the
    caller passes them to :func:`wake` once it has committed."""
    records = await conn.fetch(QUERIES["reschedule_lanes"], lanes)
    return [r["empty"] for r in records if r["empty"] is not None]


async def wake_stranded(pool: Pool, window: float) -> int:
    """The safety net behind :func:`wake`: schedule lanes of active endpoints holding a
    delivery made in the last ``window`` seconds that is still to send, with no due time
    and no holder. Returns how many were found (each one a process that died mid-race)."""
    return len(await pool.fetch(QUERIES["wake_stranded_lanes"], window))
