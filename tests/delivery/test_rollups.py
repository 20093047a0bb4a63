"""Rollups: the per-minute counts kept beside attempts equal what was recorded."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from delivery.dispatcher import _EXPIRED, Dispatcher
from delivery.outcome import AttemptResult, Outcome
from delivery.recorder import Recorder
from delivery.retries import Decision
from delivery.transport import create_transport
from hookline.activity import LATENCY_BOUNDS_MS, percentile
from hookline.db import Pool
from hookline.metrics import Metrics
from hookline.settings import Settings
from tests.conftest import TenantKey, running_worker
from tests.receiver import Received, Receiver, wait_for

# the rollups as the attempts table says they should be: attempts grouped by endpoint and
# UTC minute, 2xx or not, durations summed and put in the latency buckets
_FROM_ATTEMPTS = """
SELECT d.endpoint_id, date_trunc('minute', a.started_at, 'UTC') AS minute,
       count(*) AS attempts,
       count(*) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS succeeded,
       count(*) FILTER (WHERE a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299)
           AS failed,
       sum(a.duration_ms)::float8 AS duration_ms
FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
GROUP BY d.endpoint_id, date_trunc('minute', a.started_at, 'UTC')
"""
_HISTOGRAMS = """
SELECT d.endpoint_id, date_trunc('minute', a.started_at, 'UTC') AS minute,
       width_bucket(a.duration_ms, hookline_latency_bounds()) + 1 AS bucket, count(*) AS n
FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
GROUP BY 1, 2, 3
"""


@pytest.mark.slow
async def test_rollups_equal_the_attempts_two_workers_recorded(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    pool: Pool,
    redis: Redis,
    settings: Settings,
    receiver: Receiver,
) -> None:
    """Healthy, failing (dead-lettered after its retries) and flaky endpoints, two workers
    recording at once: every rollup row is the sum of its attempts, nothing more."""

    def respond(r: Received) -> web.Response:
        if r.path == "/bad":
            return web.Response(status=500)
        if r.path == "/flaky" and r.headers["hookline-attempt"] == "1":
            return web.Response(status=503)  # then 2xx on the retry
        return web.Response(status=204)

    receiver.respond = respond
    h = tenant.headers
    await api.post("/v1/subscribers", headers=h, json={"uid": "c"})
    for path, ordering in (("good", "strict"), ("bad", "none"), ("flaky", "keyed")):
        r = await api.post(
            "/v1/endpoints",
            headers=h,
            json={
                "subscriber": "c",
                "url": f"http://127.0.0.1:{receiver.port}/{path}",
                "ordering": ordering,
                "max_in_flight": 10,
            },
        )
        assert r.status_code == 201, r.text
    events = [{"type": "t", "subject": f"s{i % 3}", "data": {"i": i}} for i in range(20)]
    r = await api.post("/v1/events/batch", headers=h, json={"events": events})
    assert r.status_code == 202, r.text

    async def settled() -> bool:
        left: int = await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'retrying')"
        )
        return left == 0

    async with running_worker(settings, pool, redis), running_worker(settings, pool, redis):
        await wait_for(settled, timeout=60, what="every delivery to finish")

    rolled = {
        (r["endpoint_id"], r["minute"]): r
        for r in await pool.fetch("SELECT * FROM attempt_rollups")
    }
    counted = {(r["endpoint_id"], r["minute"]): r for r in await pool.fetch(_FROM_ATTEMPTS)}
    assert rolled.keys() == counted.keys()
    histograms: dict[tuple[str, datetime], list[int]] = {
        key: [0] * (len(LATENCY_BOUNDS_MS) + 1) for key in counted
    }
    for cell in await pool.fetch(_HISTOGRAMS):
        histograms[cell["endpoint_id"], cell["minute"]][cell["bucket"] - 1] = cell["n"]
    for key, want in counted.items():
        got = rolled[key]
        assert got["tenant_id"] == tenant.id
        for column in ("attempts", "succeeded", "failed"):
            assert got[column] == want[column], (key, column)
        assert got["duration_ms"] == pytest.approx(want["duration_ms"], rel=1e-4)
        assert got["latency"] == histograms[key]
    totals = await pool.fetchrow(
        "SELECT sum(attempts) AS attempts, sum(succeeded) AS ok, sum(dead_lettered) AS dead"
        " FROM attempt_rollups"
    )
    assert totals is not None
    assert totals["attempts"] == await pool.fetchval("SELECT count(*) FROM attempts")
    assert totals["attempts"] == len(receiver.requests)
    # 20 to /good, 20 x 2 to /flaky (503 then 2xx), 20 x 3 to /bad (then dead-lettered)
    assert (totals["attempts"], totals["ok"]) == (120, 40)
    assert (
        totals["dead"]
        == 20
        == await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'failed'")
    )


async def test_an_expired_event_or_a_stale_lease_adds_no_attempt_or_dead_letter(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool, settings: Settings
) -> None:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    for path in ("a", "b", "c"):
        r = await api.post(
            "/v1/endpoints",
            headers=tenant.headers,
            json={"subscriber": "c", "url": f"http://127.0.0.1:9/{path}"},
        )
        assert r.status_code == 201
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    transport = create_transport(settings)
    dispatcher = Dispatcher(settings, pool, transport, Metrics())
    try:
        jobs = await dispatcher._claim(10)
        assert len(jobs) == 3
        expired, current, stale = jobs
        # another worker took the third lane over meanwhile: its lease is no longer ours
        await pool.execute(
            "UPDATE lanes SET lease_no = lease_no + 1 WHERE id = $1", stale["lane_id"]
        )
        now = datetime.now(UTC)
        dead = Decision("failed", 2, None, None, "retries used up")
        await Recorder(settings, pool, Metrics()).record(
            [
                Outcome(expired, {}, None, _EXPIRED),
                Outcome(current, {}, AttemptResult(now, 7.0, 500, None, {}, ""), dead),
                Outcome(stale, {}, AttemptResult(now, 700.0, 500, None, {}, ""), dead),
            ]
        )
    finally:
        await transport.aclose()
    rows = {
        r["endpoint_id"]: r
        for r in await pool.fetch(
            "SELECT endpoint_id, attempts, dead_lettered FROM attempt_rollups"
        )
    }
    assert expired["endpoint_id"] not in rows  # nothing was sent
    assert (
        rows[current["endpoint_id"]]["attempts"],
        rows[current["endpoint_id"]]["dead_lettered"],
    ) == (1, 1)
    # the stale result is an attempt (it is in the audit trail) that dead-lettered nothing
    assert (
        rows[stale["endpoint_id"]]["attempts"],
        rows[stale["endpoint_id"]]["dead_lettered"],
    ) == (1, 0)
    assert await pool.fetchval("SELECT count(*) FROM attempts") == 2


async def test_a_minute_row_adds_up_batch_after_batch(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool, settings: Settings
) -> None:
    """The upsert adds counts and histograms to a row already there, bucket by bucket."""
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    r = await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={"subscriber": "c", "url": "http://127.0.0.1:9/x", "ordering": "none"},
    )
    endpoint = r.json()["id"]
    for _ in range(3):
        await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    transport = create_transport(settings)
    dispatcher = Dispatcher(settings, pool, transport, Metrics())
    minute = datetime.now(UTC).replace(second=30, microsecond=0)
    ok = Decision("succeeded", 0, None)
    try:
        jobs = await dispatcher._claim(10)
        assert len(jobs) == 3
        for job, ms in zip(jobs, (3.0, 40.0, 45000.0), strict=True):
            result = AttemptResult(minute, ms, 200, None, {}, "")
            await Recorder(settings, pool, Metrics()).record([Outcome(job, {}, result, ok)])
    finally:
        await transport.aclose()
    row = await pool.fetchrow("SELECT * FROM attempt_rollups WHERE endpoint_id = $1", endpoint)
    assert row is not None
    assert (row["attempts"], row["succeeded"], row["failed"]) == (3, 3, 0)
    assert row["duration_ms"] == pytest.approx(45043.0)
    # 3 ms in the first bucket (under 5), 40 ms in 25..50, 45 s in the overflow
    assert row["latency"] == [1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]


async def test_the_latency_bounds_in_sql_and_python_agree(pool: Pool) -> None:
    bounds = await pool.fetchval("SELECT hookline_latency_bounds()")
    assert tuple(bounds) == LATENCY_BOUNDS_MS


@pytest.mark.parametrize(
    ("counts", "q", "expected"),
    [
        ([0] * 13, 0.5, None),
        ([10] + [0] * 12, 0.5, 2.5),  # all under 5 ms: the middle of 0..5
        ([0, 4] + [0] * 11, 0.5, 7.5),  # all in 5..10
        ([0, 0, 0, 0, 10] + [0] * 8, 0.95, 97.5),  # 50..100: 95% of the way
        ([50, 0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 0, 0], 0.5, 5.0),  # the median is the edge
        ([50, 0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 0, 0], 0.95, 1000 + 1500 * 0.9),
        ([0] * 12 + [3], 0.5, 30000.0),  # overflow: "at least the last bound"
    ],
)
def test_a_percentile_is_interpolated_within_its_bucket(
    counts: list[int], q: float, expected: float | None
) -> None:
    found = percentile(counts, q)
    if expected is None:
        assert found is None
    else:
        assert found == pytest.approx(expected)
