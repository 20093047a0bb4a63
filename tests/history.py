"""History for the retention tests: backdated events, deliveries and attempts written
straight into Postgres, as ingest and the worker would have left them weeks ago.

Ids are made for the time they stand for (ids sort by the clock, and the purge walks them
up to a cutoff). Each event gets a lane of its own, as ``ordering: none`` gives it.
"""

from __future__ import annotations

from datetime import timedelta

from hookline.db import Pool


def _id(prefix: str, moment: str) -> str:
    """SQL for an id of ``prefix`` made at the time ``moment`` (an SQL expression)."""
    return (
        f"'{prefix}_' || lpad(to_hex((extract(epoch FROM {moment}) * 1000)::bigint), 12, '0')"
        f" || lpad(to_hex(((extract(epoch FROM {moment}) * 1000000)::bigint % 1000)::int),"
        " 3, '0') || substr(md5(random()::text), 1, 17)"
    )


SEED = f"""
WITH s AS (
    SELECT g, now() - make_interval(secs => $3) + g * interval '1 millisecond' AS t
    FROM generate_series(1, $4) AS g
), ev AS (
    INSERT INTO events (id, tenant_id, type, data, created_at)
    SELECT {_id("evt", "s.t")}, $1, 'order.created', '{{"n": 1}}'::jsonb, s.t FROM s
    RETURNING id, created_at
), tails AS (
    INSERT INTO lane_tails (endpoint_id, key, next_seq)
    SELECT $2, ev.id, 1 FROM ev
    RETURNING lane_id, key
), lanes_made AS (
    INSERT INTO lanes (id, tenant_id, endpoint_id, key, ready_at)
    SELECT tails.lane_id, $1, $2, tails.key,
           CASE WHEN $5 IN ('pending', 'retrying') THEN now() END
    FROM tails
    RETURNING id, key
), dl AS (
    INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, lane_id, seq, status,
                            attempts, next_attempt_at, created_at, updated_at)
    SELECT {_id("dlv", "ev.created_at")}, $1, ev.id, $2, l.id, 1, $5, $6, now(),
           ev.created_at, ev.created_at
    FROM ev JOIN lanes_made l ON l.key = ev.id
    RETURNING id, created_at
), att AS (
    INSERT INTO attempts (id, delivery_id, tenant_id, n, started_at, duration_ms, status_code)
    SELECT {_id("att", "dl.created_at")}, dl.id, $1, n, dl.created_at, 12.5, 500
    FROM dl, generate_series(1, $6) AS n
    RETURNING 1
)
SELECT array_agg(ev.id ORDER BY ev.id) FROM ev
"""


async def seed(
    pool: Pool,
    tenant_id: str,
    endpoint_id: str,
    *,
    age: timedelta,
    events: int,
    status: str = "succeeded",
    attempts: int = 1,
) -> list[str]:
    """``events`` events of ``age``, each with one delivery in ``status`` to the endpoint
    and ``attempts`` attempts; their ids."""
    made: list[str] = await pool.fetchval(
        SEED, tenant_id, endpoint_id, age.total_seconds(), events, status, attempts
    )
    return made


async def counts(pool: Pool, tenant_id: str) -> dict[str, int]:
    """A tenant's events, deliveries, attempts and lanes."""
    row = await pool.fetchrow(
        """
        SELECT (SELECT count(*) FROM events WHERE tenant_id = $1) AS events,
               (SELECT count(*) FROM deliveries WHERE tenant_id = $1) AS deliveries,
               (SELECT count(*) FROM attempts WHERE tenant_id = $1) AS attempts,
               (SELECT count(*) FROM lanes WHERE tenant_id = $1) AS lanes
        """,
        tenant_id,
    )
    assert row is not None
    return dict(row)
