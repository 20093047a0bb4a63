"""The purge's cost to live traffic: POST -> 202 and POST -> arrival during a purge pass
over a million rows, against the same traffic without one.

A tenant of ``e2e`` endpoints gets ``history`` events of 40 days ago, each with one
finished delivery and three attempts (seeded as tests.history writes them). Single-event
ingests are offered at ``RATE``/s with one worker delivering them (``e2e.open_loop``),
first with nothing else going on, then while this process runs ``hookline.retention``'s
pass over that history (Postgres doing the deletes on the same two cores). Ratio: p99 with
the purge over p99 without, which the budget wants at 1.2 or less. The pass is stopped
once the traffic ends (its batch in flight rolls back); the row says how much it removed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from bench import e2e
from bench.harness import BenchError, Rig, Row, Tenant, percentile
from hookline.retention import purge
from tests.history import seed

RATE = 100.0
_CHUNK = 10_000  # events seeded per statement


async def _rows(rig: Rig) -> int:
    return int(
        await rig.pool.fetchval(
            "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM deliveries)"
            " + (SELECT count(*) FROM attempts)"
        )
    )


async def purge_cost(rig: Rig, tenant: Tenant, history: int, seconds: float) -> list[Row]:
    endpoint = await rig.pool.fetchval(
        "SELECT id FROM endpoints WHERE tenant_id = $1 ORDER BY id LIMIT 1", tenant.id
    )
    for done in range(0, history, _CHUNK):
        await seed(
            rig.pool,
            tenant.id,
            endpoint,
            age=timedelta(days=40),
            events=min(_CHUNK, history - done),
            attempts=3,
        )
    # the seeding's dirty pages written out first, or the checkpoint that writes them lands
    # in one of the two measurements
    await rig.pool.execute("VACUUM ANALYZE events, deliveries, attempts, lanes")
    await rig.pool.execute("CHECKPOINT")
    count = max(50, int(RATE * seconds))
    # the worker runs no pass of its own: this process runs the one that is timed
    async with rig.worker(purge_interval=0):
        quiet = await e2e.open_loop(rig, tenant, RATE, count)
        before = await _rows(rig)
        started = time.monotonic()
        purging = asyncio.create_task(purge(rig.settings))
        loud = await e2e.open_loop(rig, tenant, RATE, count)
        took = time.monotonic() - started
        if purging.done():
            if purging.result() is None:
                raise BenchError("another purge pass held the lock")
            raise BenchError("the pass ended before the traffic did: seed more history")
        purging.cancel()  # the batch in flight rolls back; the measurement is over
        await asyncio.gather(purging, return_exceptions=True)
    removed = before - await _rows(rig)
    note = f"the pass removed {removed:,} of {before:,} rows in those {took:.0f}s"
    rows = []
    for what, alone, beside in (
        ("POST -> 202", quiet[1], loud[1]),
        ("POST -> arrival", quiet[0], loud[0]),
    ):
        without, during = percentile(alone, 99), percentile(beside, 99)
        ratio = during / without
        rows.append(
            Row(
                f"{what} p99 at {RATE:.0f}/s during a purge (ms)",
                f"{during:.1f} ({note})",
                f"{without:.1f} without a purge",
                f"{ratio:.2f}",
                "<= 1.2",
                ratio <= 1.2,
            )
        )
    await rig.truncate()
    return rows
