"""Retention: what the purge removes, and when, so the database stays the same size.

The rule: an event goes, with its deliveries, their attempts and its link-fetch records,
once it is older than its tenant's retention (the tenant's own, else
``HOOKLINE_RETENTION``) and every one of its deliveries is finished (succeeded, failed or
cancelled). Nothing pending or retrying is removed, however old. Every other table that
grows has a lifetime of its own: sessions and portal links go when they expire,
Idempotency-Keys after their 24 hours, finished replays after the tenant's retention,
operational notices nobody could publish after :data:`NOTICE_LIFETIME`; per-minute
rollups are folded into hourly ones after :data:`MINUTE_ROLLUPS_KEPT` (the dashboard's
7-day charts stay exact), and those go after ``HOOKLINE_ROLLUP_RETENTION``. A lane a batch
left empty goes too (``ordering: none`` makes one per event).

A pass works in batches of :data:`BATCH` rows, each its own short transaction that locks
only rows nobody else holds (SKIP LOCKED), so ingest and delivery never wait on it; a pass
killed anywhere leaves each batch whole or not done, and the next pass carries on. One
worker at a time runs passes (a Postgres advisory lock), every ``HOOKLINE_PURGE_INTERVAL``.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import Field

from hookline.db import QUERIES, Pool
from hookline.fields import WHOLE
from hookline.settings import RETENTION_RANGE, Settings

Conn = asyncpg.Connection | PoolConnectionProxy

BATCH = 500
MINUTE_ROLLUPS_KEPT = timedelta(days=35)
NOTICE_LIFETIME = timedelta(days=7)
# pg_try_advisory_lock key of the one purging session ("hookline" "purge")
_LOCK = 0x686F6F6B_70757267

Retention = Annotated[
    int,
    Field(
        ge=RETENTION_RANGE[0],
        le=RETENTION_RANGE[1],
        description=(
            "Seconds an event is kept once all of its deliveries are finished (with its "
            "deliveries and their attempts); nothing pending or retrying is removed. "
            "null: the installation's (HOOKLINE_RETENTION, 30 days)."
        ),
    ),
    WHOLE,
]

# the tables a pass removes from, in the order a report lists them
TABLES = (
    "events",
    "deliveries",
    "attempts",
    "event_fetches",
    "lanes",
    "replays",
    "attempt_rollups",
    "attempt_rollups_hourly",
    "sessions",
    "portal_links",
    "idempotency_keys",
    "operational_notices",
)

# what goes with an event, and the lanes that go when it leaves them empty
_EVENT_TABLES = ("events", "deliveries", "attempts", "event_fetches", "lanes")


@dataclass
class Report:
    """Rows removed (or, for a dry run, that the next pass would remove) by table."""

    rows: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    dry_run: bool = False

    def line(self) -> str:
        counts = ", ".join(f"{self.rows[t]} {t}" for t in TABLES if self.rows[t])
        if self.dry_run:
            return f"the next purge pass would remove {counts or 'nothing'}"
        return f"purged {counts or 'nothing'} in {self.seconds:.1f}s"


async def purge(pool: Pool, settings: Settings, *, batch: int = BATCH) -> Report | None:
    """One pass, unless another process is running one (then None)."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK):
            return None
        try:
            return await _pass(conn, settings, batch)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)


async def purgeable(pool: Pool, settings: Settings) -> Report:
    """What a pass started now would remove (counted, nothing removed)."""
    report = Report(dry_run=True)
    rows = report.rows
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        for tenant in await conn.fetch(QUERIES["retention_tenants"], settings.retention):
            counts = await conn.fetchrow(
                QUERIES["count_purgeable_events"], tenant["id"], tenant["retention"]
            )
            assert counts is not None
            rows.update({t: counts[t] for t in _EVENT_TABLES})
            rows["replays"] += await conn.fetchval(
                QUERIES["count_replays"], tenant["id"], tenant["retention"]
            )
        rows["attempt_rollups"] = await conn.fetchval(
            QUERIES["count_minute_rollups"], now - MINUTE_ROLLUPS_KEPT
        )
        rows["attempt_rollups_hourly"] = await conn.fetchval(
            QUERIES["count_hourly_rollups"], now - timedelta(seconds=settings.rollup_retention)
        )
        for table in ("sessions", "portal_links", "idempotency_keys"):
            rows[table] = await conn.fetchval(QUERIES[f"count_{table}"])
        rows["operational_notices"] = await conn.fetchval(
            QUERIES["count_notices"], NOTICE_LIFETIME.total_seconds()
        )
    return report


async def _pass(conn: Conn, settings: Settings, batch: int) -> Report:
    started = time.monotonic()
    report = Report()
    rows = report.rows
    for tenant in await conn.fetch(QUERIES["retention_tenants"], settings.retention):
        await _events(conn, tenant["id"], tenant["retention"], batch, rows)
        rows["replays"] += await _batches(
            conn, "purge_replays", batch, tenant["id"], tenant["retention"]
        )
    now = datetime.now(UTC)
    while True:
        folded = await conn.fetchrow(
            QUERIES["fold_minute_rollups"], now - MINUTE_ROLLUPS_KEPT, batch
        )
        assert folded is not None
        rows["attempt_rollups"] += folded["n"]
        if folded["n"] < batch:
            break
    hours_cutoff = now - timedelta(seconds=settings.rollup_retention)
    rows["attempt_rollups_hourly"] += await _batches(
        conn, "purge_hourly_rollups", batch, hours_cutoff
    )
    for table in ("sessions", "portal_links", "idempotency_keys"):
        rows[table] += await _batches(conn, f"purge_{table}", batch)
    rows["operational_notices"] += await _batches(
        conn, "purge_notices", batch, NOTICE_LIFETIME.total_seconds()
    )
    report.seconds = time.monotonic() - started
    return report


async def _events(
    conn: Conn, tenant_id: str, retention: float, batch: int, rows: Counter[str]
) -> None:
    """A tenant's events past its retention, a batch at a time in id order, each batch in
    one transaction with the lanes it emptied."""
    after = ""
    while True:
        async with conn.transaction():
            done = await conn.fetchrow(QUERIES["purge_events"], tenant_id, retention, after, batch)
            assert done is not None
            rows.update({t: done[t] for t in _EVENT_TABLES if t != "lanes"})
            if done["lanes"]:
                rows["lanes"] += await _empty_lanes(conn, done["lanes"])
        if done["seen"] < batch:
            return
        after = done["last"]


async def _empty_lanes(conn: Conn, lane_ids: list[int]) -> int:
    # two statements: the second's snapshot is taken once the tails are locked, so it sees
    # every delivery an ingest added before it let go of one
    locked = [r["id"] for r in await conn.fetch(QUERIES["lock_empty_lanes"], lane_ids)]
    if not locked:
        return 0
    return len(await conn.fetch(QUERIES["delete_empty_lanes"], locked))


async def _batches(conn: Conn, query: str, batch: int, *args: object) -> int:
    """Run a ``DELETE ... LIMIT`` query (the batch size its last parameter) until it
    removes fewer than a batch; how many rows it removed."""
    removed = 0
    while True:
        status = await conn.execute(QUERIES[query], *args, batch)
        n = int(status.rsplit(" ", 1)[1])
        removed += n
        if n < batch:
            return removed


async def storage(pool: Pool, tenant_id: str) -> tuple[list[asyncpg.Record], datetime | None]:
    """Each table's size on disk and estimated rows, and when the tenant's oldest kept
    event was accepted (None: it has none)."""
    tables = await pool.fetch(QUERIES["storage"])
    oldest: datetime | None = await pool.fetchval(QUERIES["oldest_event"], tenant_id)
    return tables, oldest
