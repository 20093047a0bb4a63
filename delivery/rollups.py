"""Rollups: the per-minute counts the dashboard reads instead of scanning attempts.

Each recorded batch adds its attempts to one row per (endpoint, minute) in the same
transaction that appends them (see ``sql/rollups.sql``), so the counts are exactly the
attempts that committed: a batch that rolls back adds nothing, one that commits adds
everything it appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from delivery.outcome import Outcome
from delivery.queries import SQL


async def record_rollups(
    conn: asyncpg.Connection | PoolConnectionProxy, batch: Sequence[Outcome]
) -> None:
    """Add the batch's attempts to their endpoints' rollups, in the caller's transaction
    (after ``move_deliveries``). Results that sent nothing (an expired event) are no
    attempts and are left out."""
    columns: list[list[Any]] = [[] for _ in range(8)]
    for o in batch:
        result = o.result
        if result is None:
            continue
        job = o.job
        row = (
            job["endpoint_id"],
            job["delivery_id"],
            job["lane_id"],
            job["lease_no"],
            o.decision.status,
            result.started_at,
            result.duration_ms,
            result.status_code,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    if columns[0]:
        await conn.execute(SQL["roll_up_attempts"], *columns)
