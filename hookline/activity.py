"""Activity: what the dashboard counts and charts, read from the per-minute rollups.

Attempts are append-only and grow without bound; the delivery path adds each recorded
batch to one rollup row per (endpoint, minute) in the same transaction (see
``delivery/sql/rollups.sql``). Everything here reads those rows, endpoints, lanes and the
dead-letter index, never ``attempts``, so the overview costs the same with a million
attempts as with ten. Every query is scoped to a tenant and, for a portal session, to one
subscriber's endpoints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hookline.db import QUERIES, Pool, Row

#: Upper bounds (ms) of the latency histogram's buckets; a last bucket holds the rest.
#: The same list as ``hookline_latency_bounds()`` in SQL (a test holds them equal).
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
)
_BUCKETS = len(LATENCY_BOUNDS_MS) + 1


@dataclass(frozen=True)
class Bucket:
    """Attempts that started in ``[at, at + width)``."""

    at: datetime
    attempts: int = 0
    succeeded: int = 0
    failed: int = 0
    dead_lettered: int = 0
    duration_ms: float = 0.0
    latency: tuple[int, ...] = (0,) * _BUCKETS

    @property
    def success_rate(self) -> float | None:
        """Succeeded attempts in percent; None without attempts."""
        return 100.0 * self.succeeded / self.attempts if self.attempts else None

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of the durations, estimated from the histogram."""
        return percentile(self.latency, q)


def percentile(counts: Sequence[int], q: float) -> float | None:
    """Estimate the ``q`` quantile (0..1) in ms from a latency histogram (one count per
    bucket of :data:`LATENCY_BOUNDS_MS`, then the overflow), interpolating linearly within
    the bucket it falls in. None when empty; the last bound when it falls in the overflow
    (all that is known is "at least that")."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            if i >= len(LATENCY_BOUNDS_MS):
                return LATENCY_BOUNDS_MS[-1]
            low = LATENCY_BOUNDS_MS[i - 1] if i else 0.0
            high = LATENCY_BOUNDS_MS[i]
            return low + (high - low) * max(0.0, rank - seen) / n
        seen += n
    return LATENCY_BOUNDS_MS[-1]


def total(buckets: Sequence[Bucket]) -> Bucket:
    """All the buckets as one (stamped with the first one's start)."""
    return Bucket(
        at=buckets[0].at if buckets else datetime.now(UTC),
        attempts=sum(b.attempts for b in buckets),
        succeeded=sum(b.succeeded for b in buckets),
        failed=sum(b.failed for b in buckets),
        dead_lettered=sum(b.dead_lettered for b in buckets),
        duration_ms=sum(b.duration_ms for b in buckets),
        latency=tuple(sum(column) for column in zip(*(b.latency for b in buckets), strict=True))
        if buckets
        else (0,) * _BUCKETS,
    )


def window(now: datetime, width: timedelta, buckets: int) -> datetime:
    """The start of the first of ``buckets`` buckets of ``width`` that end with the one
    holding ``now`` (bucket edges fall on whole multiples of ``width`` since the epoch)."""
    step = width.total_seconds()
    current = math.floor(now.timestamp() / step) * step
    return datetime.fromtimestamp(current, UTC) - width * (buckets - 1)


async def activity(
    pool: Pool,
    tenant_id: str,
    *,
    start: datetime,
    width: timedelta,
    buckets: int,
    subscriber_id: str | None = None,
) -> list[Bucket]:
    """``buckets`` consecutive buckets of ``width`` from ``start``, empty ones included."""
    until = start + width * buckets
    records = await pool.fetch(
        QUERIES["activity_series"], tenant_id, subscriber_id, start, until, width
    )
    found = {
        r["at"]: Bucket(
            at=r["at"],
            attempts=r["attempts"],
            succeeded=r["succeeded"],
            failed=r["failed"],
            dead_lettered=r["dead_lettered"],
            duration_ms=r["duration_ms"],
            latency=tuple(r["latency"]),
        )
        for r in records
    }
    slots = (start + width * i for i in range(buckets))
    return [found.get(at, Bucket(at=at)) for at in slots]


async def activity_now(pool: Pool, tenant_id: str, subscriber_id: str | None = None) -> Row:
    """``endpoints``, ``has_events``, ``dead_letters``, ``due_lanes`` and ``oldest_due_s``
    (how long the oldest due lane has waited) of the tenant or one subscriber."""
    found = await pool.fetchrow(QUERIES["activity_now"], tenant_id, subscriber_id)
    return dict(found) if found is not None else {}


async def failing_endpoints(
    pool: Pool, tenant_id: str, subscriber_id: str | None = None, limit: int = 10
) -> list[Row]:
    """Endpoints that are disabled, warned about or failing, worst first; each row has
    ``total``, how many there are in all."""
    records = await pool.fetch(QUERIES["failing_endpoints"], tenant_id, subscriber_id, limit)
    return [dict(r) for r in records]
