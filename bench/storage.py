"""Bytes per delivery, measured: what one delivered event costs on disk, table by table,
and the disk an installation needs at a steady rate over the default retention.

``n`` events of a typical size (a ~300-byte ``data`` object) are batch-ingested for the
``e2e`` tenant's endpoints, one delivery each, and delivered by a worker to a receiver
that answers 204 with a short body (one attempt each, its request and response headers
kept as the worker keeps them). Then the tables are vacuumed and each one's heap (with
TOAST) and indexes are divided by the deliveries. The endpoints are strict, so lanes are a
few per endpoint; ``ordering: none`` adds a lane and its tail per delivery. Rollups are per
endpoint and minute, not per delivery: they are shown per endpoint that sends every minute
of the 35 days they are kept by the minute and the 400 days by the hour.
"""

from __future__ import annotations

from bench import e2e
from bench.harness import Rig, Row, Tenant, concurrently

TABLES = ("events", "deliveries", "attempts", "lanes", "lane_tails")
RETENTION_DAYS = 30
RATES = (100_000, 1_000_000, 10_000_000)  # deliveries a day
_BATCH = 500


def _event(i: int) -> dict[str, object]:
    data = {
        "order_id": f"ord_{i:012d}",
        "customer": {"id": f"cus_{i % 997:06d}", "email": f"buyer{i % 997}@example.com"},
        "total": {"amount": 1000 + i % 5000, "currency": "EUR"},
        "items": [{"sku": f"sku-{i % 37}", "quantity": 1 + i % 3}],
        "placed_at": "2026-12-04T10:00:00Z",
    }
    return {"type": f"t.{i % e2e.LANES}", "subject": f"order/{i}", "data": data}


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


async def bytes_per_delivery(rig: Rig, tenant: Tenant, n: int) -> list[Row]:
    n = n // _BATCH * _BATCH

    async def one(b: int) -> None:
        await tenant.post_batch([_event(b * _BATCH + i) for i in range(_BATCH)])

    async with rig.worker():
        await concurrently(n // _BATCH, 4, one)
        await rig.until_recorded(n)
    await rig.pool.execute(f"VACUUM ANALYZE {', '.join(TABLES)}, attempt_rollups")
    rows: list[Row] = []
    whole = 0.0
    for table in TABLES:
        sizes = await rig.pool.fetchrow(
            "SELECT pg_table_size($1::regclass), pg_indexes_size($1::regclass)", table
        )
        assert sizes is not None
        heap, indexes = sizes
        per = (heap + indexes) / n
        whole += per
        rows.append(
            Row(
                f"disk per delivery: {table} (bytes)",
                f"{per:,.0f}",
                f"heap {heap / n:,.0f} + indexes {indexes / n:,.0f}",
                "-",
                "-",
                None,
            )
        )
    # a few hundred rows cannot be measured by their pages: a row's own bytes, its
    # header and line pointer (28), and its two index entries (~40 each)
    rollup = await rig.pool.fetchval(
        "SELECT avg(pg_column_size(r.*)) + 28 + 2 * 40 FROM attempt_rollups r"
    )
    kept = 35 * 1440 + 400 * 24  # rows an always-sending endpoint keeps
    rows.append(
        Row(
            "disk per delivery: all of the above (bytes)",
            f"{whole:,.0f}",
            ", ".join(
                f"{rate:,}/day x {RETENTION_DAYS} days: {_size(whole * rate * RETENTION_DAYS)}"
                for rate in RATES
            ),
            "-",
            "-",
            None,
        )
    )
    rows.append(
        Row(
            "disk per endpoint: rollups (35 d by the minute, 400 d by the hour)",
            _size(rollup * kept),
            f"~{rollup:,.0f} B a row, {kept:,} rows",
            "-",
            "-",
            None,
        )
    )
    await rig.truncate()
    return rows
