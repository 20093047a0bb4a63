"""Retention: what the purge removes, and when, so the database stays the same size.

The rule: an event goes, with its deliveries, their attempts and its link-fetch records,
once it is older than its tenant's retention (the tenant's own, else
``HOOKLINE_RETENTION``) and every one of its deliveries is finished (succeeded, failed or
cancelled). Nothing pending or retrying is removed, however old. Every other table that
grows has a lifetime of its own: sessions go when they expire, portal links a day later,
Idempotency-Keys after their 24 hours, finished replays after the tenant's retention,
operational notices nobody could publish after :data:`NOTICE_LIFETIME`; per-minute
rollups are folded into hourly ones after ``MINUTE_ROLLUPS_KEPT`` (the dashboard's
7-day charts stay exact), and those go after ``HOOKLINE_ROLLUP_RETENTION``. A lane a batch
left empty goes too (``ordering: none`` makes one per event).

A pass works in batches of :data:`BATCH` rows, each its own short transaction that locks
only rows nobody else holds (SKIP LOCKED), so ingest and delivery never wait on it; a pass
killed anywhere leaves each batch whole or not done, and the next pass carries on. One
worker at a time runs passes (a Postgres advisory lock), every ``HOOKLINE_PURGE_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
from pydantic import Field

from hookline.db import QUERIES, Connection, Pool, connect
from hookline.fields import WHOLE
from hookline.portal import EXPIRED_LINK_KEPT
from hookline.settings import MINUTE_ROLLUPS_KEPT, RETENTION_RANGE, Settings

BATCH = 200
# the part of a pass's time its batches may take; it rests the rest (~5k rows/s at most
# here, where a million deliveries a day with their attempts is ~50 rows/s to remove)
SHARE = 0.1
# batches of a tenant's events one pass looks at, at most (100,000 events: a tenant's
# history it may not lose yet cannot make every pass read all of it)
TENANT_BATCHES = 500
NOTICE_LIFETIME = timedelta(days=7)
# pg_try_advisory_lock key of the one purging session ("hookpurg" in ASCII)
_LOCK = 0x686F6F6B_70757267

Retention = Annotated[
    int,
    Field(
        ge=RETENTION_RANGE[0],
        le=RETENTION_RANGE[1],
        description=(
            "Seconds an event is kept once all of its deliveries are finished (with its "
            "deliveries and their attempts); nothing pending or retrying is removed. "
            "null: the installation's (HOOKLINE_RETENTION, "
            f"{Settings.model_fields['retention'].default // 86400} days by default)."
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
    """Rows removed (or, for a dry run, that qualify for removal now) by table."""

    rows: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    dry_run: bool = False

    def line(self) -> str:
        counts = ", ".join(f"{self.rows[t]} {t}" for t in TABLES if self.rows[t])
        if self.dry_run:
            return f"the purge would remove {counts or 'nothing'}"
        return f"purged {counts or 'nothing'} in {self.seconds:.1f}s"


async def purge(
    settings: Settings,
    *,
    batch: int = BATCH,
    share: float = SHARE,
    per_tenant: int = TENANT_BATCHES,
) -> Report | None:
    """One pass, unless another process is running one (then None), on a connection of its
    own that holds the lock. Batches take at most ``share`` of the pass's time: it rests in
    between. A tenant's events get at most ``per_tenant`` batches a pass."""
    conn = await connect(settings)
    try:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK):
            return None
        return await _Pass(conn, batch, share, per_tenant).run(settings)
    finally:
        # ends the session at once, the lock with it, however the pass ended (cancelled too)
        conn.terminate()


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
            QUERIES["count_minute_rollups"], now - timedelta(seconds=MINUTE_ROLLUPS_KEPT)
        )
        rows["attempt_rollups_hourly"] = await conn.fetchval(
            QUERIES["count_hourly_rollups"], now - timedelta(seconds=settings.rollup_retention)
        )
        for table in ("sessions", "idempotency_keys"):
            rows[table] = await conn.fetchval(QUERIES[f"count_{table}"])
        rows["portal_links"] = await conn.fetchval(QUERIES["count_portal_links"], EXPIRED_LINK_KEPT)
        rows["operational_notices"] = await conn.fetchval(
            QUERIES["count_notices"], NOTICE_LIFETIME.total_seconds()
        )
    return report


class _Pass:
    """A pass's batches on one connection, each followed by a rest."""

    def __init__(self, conn: Connection, batch: int, share: float, per_tenant: int) -> None:
        self._conn = conn
        self._batch = batch
        self._per_tenant = per_tenant
        self._rest = 1 / share - 1  # seconds of rest per second of work
        self.report = Report()

    async def run(self, settings: Settings) -> Report:
        started = time.monotonic()
        rows = self.report.rows
        for tenant in await self._conn.fetch(QUERIES["retention_tenants"], settings.retention):
            await self._events(tenant["id"], tenant["retention"], tenant["after"])
            rows["replays"] += await self._repeat(
                "purge_replays", tenant["id"], tenant["retention"]
            )
        now = datetime.now(UTC)
        rows["attempt_rollups"] += await self._repeat(
            "fold_minute_rollups", now - timedelta(seconds=MINUTE_ROLLUPS_KEPT)
        )
        rows["attempt_rollups_hourly"] += await self._repeat(
            "purge_hourly_rollups", now - timedelta(seconds=settings.rollup_retention)
        )
        for table in ("sessions", "idempotency_keys"):
            rows[table] += await self._repeat(f"purge_{table}")
        rows["portal_links"] += await self._repeat("purge_portal_links", EXPIRED_LINK_KEPT)
        rows["operational_notices"] += await self._repeat(
            "purge_notices", NOTICE_LIFETIME.total_seconds()
        )
        self.report.seconds = time.monotonic() - started
        return self.report

    async def _events(self, tenant_id: str, retention: float, after: str) -> None:
        """A tenant's events past its retention, a batch at a time in id order from where
        the last pass stopped, each batch in one transaction with the lanes it emptied; at
        most ``per_tenant`` batches, then the next pass goes on from there."""
        conn, rows = self._conn, self.report.rows
        for _ in range(self._per_tenant):
            began = time.monotonic()
            async with conn.transaction():
                ids = [
                    r["id"]
                    for r in await conn.fetch(
                        QUERIES["lock_old_events"], tenant_id, retention, after, self._batch
                    )
                ]
                if ids:
                    done = await conn.fetchrow(QUERIES["purge_events"], ids)
                    assert done is not None
                    rows.update({t: done[t] for t in _EVENT_TABLES if t != "lanes"})
                    if done["lanes"]:
                        rows["lanes"] += await _empty_lanes(conn, done["lanes"])
            await self._rest_after(began)
            if len(ids) < self._batch:
                await conn.execute(QUERIES["save_purge_cursor"], tenant_id, None)
                return
            after = ids[-1]
        await conn.execute(QUERIES["save_purge_cursor"], tenant_id, after)

    async def _repeat(self, query: str, *args: object) -> int:
        """Run a batch query (the batch size its last parameter, the rows it removed the
        first column of its one row) until it removes fewer than a batch; the total."""
        removed = 0
        while True:
            began = time.monotonic()
            n: int = await self._conn.fetchval(QUERIES[query], *args, self._batch)
            await self._rest_after(began)
            removed += n
            if n < self._batch:
                return removed

    async def _rest_after(self, began: float) -> None:
        # what ingest and delivery need of the cores and the disk stays theirs: a pass
        # over a million rows at full speed doubled single-event ingest's p99 here
        await asyncio.sleep((time.monotonic() - began) * self._rest)


async def _empty_lanes(conn: Connection, lane_ids: list[int]) -> int:
    # two statements: the second's snapshot is taken once the tails are locked, so it sees
    # every delivery an ingest added before it let go of one
    locked = [r["id"] for r in await conn.fetch(QUERIES["lock_empty_lanes"], lane_ids)]
    if not locked:
        return 0
    return len(await conn.fetch(QUERIES["delete_empty_lanes"], locked))


async def storage(pool: Pool, tenant_id: str) -> tuple[list[asyncpg.Record], datetime | None]:
    """Each table's size on disk and estimated rows, and when the tenant's oldest kept
    event was accepted (None: it has none)."""
    tables = await pool.fetch(QUERIES["storage"])
    oldest: datetime | None = await pool.fetchval(QUERIES["oldest_event"], tenant_id)
    return tables, oldest
