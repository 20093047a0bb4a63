"""Retention: what a purge pass removes, what it never touches, and that what it keeps
still works, against real Postgres (history seeded as ingest and the worker leave it)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from redis.asyncio import Redis

from hookline.db import Pool
from hookline.metrics import Metrics
from hookline.retention import TABLES, purge, purgeable
from hookline.settings import Settings
from hookline.tenants import create_tenant
from tests.conftest import TenantKey, running_worker
from tests.dashboard.sessions import open_portal, sign_in
from tests.history import counts, seed
from tests.processes import ROOT, settings_env
from tests.receiver import Receiver, wait_for

DAY = timedelta(days=1)


async def _endpoint(api: httpx.AsyncClient, tenant: TenantKey, url: str) -> str:
    h = tenant.headers
    r = await api.post("/v1/subscribers", headers=h, json={"uid": "c"})
    assert r.status_code in (201, 409), r.text
    r = await api.post(
        "/v1/endpoints",
        headers=h,
        json={"subscriber": "c", "url": url, "ordering": "none", "retry_schedule": [0.1]},
    )
    assert r.status_code == 201, r.text
    endpoint_id: str = r.json()["id"]
    return endpoint_id


async def _orphans(pool: Pool) -> dict[str, int]:
    row = await pool.fetchrow(
        """
        SELECT (SELECT count(*) FROM attempts a
                WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id))
                   AS attempts,
               (SELECT count(*) FROM deliveries d
                WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = d.event_id))
                   AS deliveries,
               (SELECT count(*) FROM lane_tails t
                WHERE NOT EXISTS (SELECT 1 FROM lanes l WHERE l.id = t.lane_id)) AS tails
        """
    )
    assert row is not None
    return dict(row)


async def test_finished_events_past_the_retention_go_and_nothing_unfinished_does(
    api: httpx.AsyncClient, pool: Pool, settings: Settings, tenant: TenantKey
) -> None:
    endpoint = await _endpoint(api, tenant, "http://127.0.0.1:9/hook")
    old = {
        status: await seed(pool, tenant.id, endpoint, age=40 * DAY, events=30, status=status)
        for status in ("succeeded", "failed", "cancelled")
    }
    # however old, what is still being delivered stays
    retrying = await seed(
        pool, tenant.id, endpoint, age=40 * DAY, events=7, status="retrying", attempts=3
    )
    pending = await seed(pool, tenant.id, endpoint, age=90 * DAY, events=3, status="pending")
    young = await seed(pool, tenant.id, endpoint, age=29 * DAY, events=11, attempts=2)
    # another tenant keeps a week: its ten-day-old events go, its six-day-old ones stay
    other_tenant, other_key = await create_tenant(pool, "Brief")
    other = TenantKey(other_tenant.id, other_key)
    r = await api.patch("/v1/settings", headers=other.headers, json={"retention": 7 * 86400})
    assert r.status_code == 200 and r.json()["retention"] == 7 * 86400, r.text
    other_endpoint = await _endpoint(api, other, "http://127.0.0.1:9/hook")
    await seed(pool, other.id, other_endpoint, age=10 * DAY, events=20, attempts=2)
    kept_other = await seed(pool, other.id, other_endpoint, age=6 * DAY, events=5)

    forecast = await purgeable(pool, settings)
    report = await purge(settings, batch=16)  # small batches: many of them
    assert report is not None

    expected = {"events": 110, "deliveries": 110, "attempts": 130, "lanes": 110}
    assert {t: report.rows[t] for t in expected} == expected, report.line()
    assert {t: forecast.rows[t] for t in expected} == expected, forecast.line()
    ids = {r["id"] for r in await pool.fetch("SELECT id FROM events")}
    assert ids == set(retrying + pending + young + kept_other)
    assert not ids & set(old["succeeded"] + old["failed"] + old["cancelled"])
    assert await counts(pool, tenant.id) == {
        "events": 21,
        "deliveries": 21,
        "attempts": 7 * 3 + 3 + 11 * 2,
        "lanes": 21,
    }
    assert await _orphans(pool) == {"attempts": 0, "deliveries": 0, "tails": 0}
    # the next pass finds nothing more
    again = await purge(settings)
    assert again is not None
    assert again.rows.total() == 0, again.line()


async def test_what_a_pass_keeps_is_still_delivered_and_new_events_open_new_lanes(
    api: httpx.AsyncClient,
    pool: Pool,
    redis: Redis,
    settings: Settings,
    tenant: TenantKey,
    receiver: Receiver,
) -> None:
    endpoint = await _endpoint(api, tenant, receiver.url)
    await seed(pool, tenant.id, endpoint, age=40 * DAY, events=50)
    retrying = await seed(pool, tenant.id, endpoint, age=40 * DAY, events=4, status="retrying")
    report = await purge(settings)
    assert report is not None and report.rows["events"] == 50
    r = await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    assert r.status_code == 202, r.text
    fresh = r.json()["id"]
    async with running_worker(settings, pool, redis):

        def arrived() -> bool:
            got = {req.headers.get("webhook-id") for req in receiver.requests}
            return len(got) == 5

        await wait_for(arrived, what="the four kept retries and the new event")
    bodies = [req.body for req in receiver.requests]
    assert any(fresh.encode() in body for body in bodies)
    statuses = await pool.fetch(
        "SELECT status FROM deliveries WHERE event_id = ANY ($1::text[])", [*retrying, fresh]
    )
    assert [s["status"] for s in statuses] == ["succeeded"] * 5


async def test_settings_say_and_bound_a_tenants_retention(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    h = tenant.headers
    assert (await api.get("/v1/settings", headers=h)).json()["retention"] is None
    for bad in (3599, 3650 * 86400 + 1, "30d", 86400.5):
        r = await api.patch("/v1/settings", headers=h, json={"retention": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["errors"][0]["loc"] == ["body", "retention"]
    r = await api.patch("/v1/settings", headers=h, json={"retention": 86400.0})
    assert r.status_code == 200 and r.json()["retention"] == 86400
    r = await api.patch("/v1/settings", headers=h, json={"retention": None})
    assert r.status_code == 200 and r.json()["retention"] is None


async def test_every_other_table_has_its_lifetime(
    api: httpx.AsyncClient, pool: Pool, settings: Settings, tenant: TenantKey
) -> None:
    endpoint = await _endpoint(api, tenant, "http://127.0.0.1:9/hook")
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    latency = [1] * 13
    await pool.executemany(
        "INSERT INTO attempt_rollups (endpoint_id, minute, tenant_id, attempts, succeeded,"
        " failed, dead_lettered, duration_ms, latency) VALUES ($1, $2, $3, 2, 1, 1, 0, 30, $4)",
        [
            (endpoint, when, tenant.id, latency)
            for when in (
                minute - timedelta(days=40, minutes=5),
                minute - timedelta(days=40, minutes=6),  # the same hour as the one above
                minute - timedelta(days=36),
                minute - timedelta(days=34),  # still kept by the minute
            )
        ],
    )
    await pool.execute(
        "INSERT INTO attempt_rollups_hourly (endpoint_id, hour, tenant_id, attempts, succeeded,"
        " failed, dead_lettered, duration_ms, latency) VALUES ($1, $2, $3, 1, 1, 0, 0, 5, $4)",
        endpoint,
        now - timedelta(days=401),
        tenant.id,
        latency,
    )
    subscriber = await pool.fetchval("SELECT id FROM subscribers WHERE tenant_id = $1", tenant.id)
    for offset in (-60, 3600):  # expired a minute ago; valid for another hour
        await pool.execute(
            "INSERT INTO sessions (token_hash, tenant_id, subscriber_id, csrf_token, expires_at)"
            " VALUES (gen_random_uuid()::text::bytea, $1, $2, 'x', now() + make_interval(secs"
            " => $3))",
            tenant.id,
            subscriber,
            offset,
        )
    # expired a day and a minute ago; a minute ago (kept a day, to say "expired" if opened)
    for offset in (-86460, -60):
        await pool.execute(
            "INSERT INTO portal_links (token_hash, tenant_id, subscriber_id, expires_at)"
            " VALUES (gen_random_uuid()::text::bytea, $1, $2, now() + make_interval(secs => $3))",
            tenant.id,
            subscriber,
            offset,
        )
    for hours in (25, 23):
        await pool.execute(
            "INSERT INTO idempotency_keys (tenant_id, key, route, request_hash, created_at)"
            " VALUES ($1, $2, 'r', 'h', now() - make_interval(hours => $3))",
            tenant.id,
            f"k{hours}",
            hours,
        )
    for days in (8, 6):
        await pool.execute(
            "INSERT INTO operational_notices (tenant_id, endpoint_id, type, data, created_at)"
            " VALUES ($1, $2, 'endpoint.failing', '{}', now() - make_interval(days => $3))",
            tenant.id,
            endpoint,
            days,
        )
    for days in (31, 29):
        await pool.execute(
            "INSERT INTO replays (tenant_id, endpoint_id, statuses, rate, state, total,"
            " finished_at) VALUES ($1, $2, '{failed}', 10, 'done', 0,"
            " now() - make_interval(days => $3))",
            tenant.id,
            endpoint,
            days,
        )

    forecast = await purgeable(pool, settings)
    report = await purge(settings)
    assert report is not None
    expected = {
        "attempt_rollups": 3,
        "attempt_rollups_hourly": 1,
        "sessions": 1,
        "portal_links": 1,
        "idempotency_keys": 1,
        "operational_notices": 1,
        "replays": 1,
    }
    assert {t: report.rows[t] for t in expected} == expected, report.line()
    assert {t: forecast.rows[t] for t in expected} == expected, forecast.line()
    for table in expected.keys() - {"attempt_rollups_hourly"}:  # what was young is kept
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 1, table
    # the two minutes of one hour became one row with their sums; the 36-day-old another
    folded = await pool.fetch(
        "SELECT attempts, failed, duration_ms, latency FROM attempt_rollups_hourly"
        " WHERE hour > now() - interval '1 year' ORDER BY hour"
    )
    assert [dict(h) for h in folded] == [
        {"attempts": 4, "failed": 2, "duration_ms": 60.0, "latency": [2] * 13},
        {"attempts": 2, "failed": 1, "duration_ms": 30.0, "latency": [1] * 13},
    ]


async def test_a_history_that_must_stay_costs_each_pass_a_bounded_share(
    api: httpx.AsyncClient, pool: Pool, settings: Settings, tenant: TenantKey
) -> None:
    """A tenant holding a long history it may not lose yet (a paused endpoint's pending
    deliveries) is read a bounded share a pass, where the next pass goes on; what can go
    behind it still goes, a pass later."""
    endpoint = await _endpoint(api, tenant, "http://127.0.0.1:9/hook")
    held = await seed(pool, tenant.id, endpoint, age=50 * DAY, events=60, status="pending")
    done = await seed(pool, tenant.id, endpoint, age=40 * DAY, events=25)
    passes = []
    for _ in range(4):
        report = await purge(settings, batch=10, per_tenant=4)
        assert report is not None
        passes.append(report.rows["events"])
    # four batches of ten a pass: the first reads 40 held events, the second the other 20
    # held and 20 done ones, the third the last 5 (the end: the cursor starts over), and
    # the fourth reads everything held again and finds nothing
    assert passes == [0, 20, 5, 0], passes
    kept = {r["id"] for r in await pool.fetch("SELECT id FROM events")}
    assert kept == set(held) and not kept & set(done)


async def test_one_pass_runs_at_a_time(
    api: httpx.AsyncClient, pool: Pool, settings: Settings, tenant: TenantKey
) -> None:
    endpoint = await _endpoint(api, tenant, "http://127.0.0.1:9/hook")
    await seed(pool, tenant.id, endpoint, age=40 * DAY, events=400)
    first, second = await asyncio.gather(purge(settings, batch=10), purge(settings, batch=10))
    reports = [r for r in (first, second) if r is not None]
    assert len(reports) == 1 and reports[0].rows["events"] == 400


async def test_a_worker_purges_and_counts_what_it_removed(
    api: httpx.AsyncClient,
    pool: Pool,
    redis: Redis,
    settings: Settings,
    tenant: TenantKey,
) -> None:
    endpoint = await _endpoint(api, tenant, "http://127.0.0.1:9/hook")
    await seed(pool, tenant.id, endpoint, age=40 * DAY, events=12, attempts=2)
    metrics = Metrics()
    quick = settings.model_copy(update={"purge_interval": 0.1})

    def purged(table: str) -> float:
        value: Any = metrics.registry.get_sample_value(
            "hookline_purged_rows_total", {"table": table}
        )
        return float(value or 0)

    async with running_worker(quick, pool, redis, metrics):
        await wait_for(lambda: purged("attempts") == 24, what="the worker's purge pass")
    assert (purged("events"), purged("deliveries"), purged("lanes")) == (12, 12, 12)
    assert await counts(pool, tenant.id) == {
        "events": 0,
        "deliveries": 0,
        "attempts": 0,
        "lanes": 0,
    }


async def test_purge_dry_run_says_what_the_next_pass_would_remove_and_removes_nothing(
    api: httpx.AsyncClient, pool: Pool, settings: Settings, tenant: TenantKey
) -> None:
    endpoint = await _endpoint(api, tenant, "http://127.0.0.1:9/hook")
    await seed(pool, tenant.id, endpoint, age=40 * DAY, events=7, attempts=2)

    async def hookline(*args: str) -> str:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "hookline", *args],
            cwd=ROOT,
            env=settings_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    said = await hookline("purge", "--dry-run")
    assert "would remove 7 events, 7 deliveries, 14 attempts, 7 lanes\n" in said, said
    assert (await counts(pool, tenant.id))["attempts"] == 14
    said = await hookline("purge")
    assert "purged 7 events, 7 deliveries, 14 attempts, 7 lanes in " in said, said
    assert (await counts(pool, tenant.id))["attempts"] == 0


async def test_operators_see_what_is_kept_and_subscribers_do_not(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    endpoint = await _endpoint(api, tenant, "http://127.0.0.1:9/hook")
    await seed(pool, tenant.id, endpoint, age=12 * DAY, events=5)
    r = await api.patch("/v1/settings", headers=tenant.headers, json={"retention": 14 * 86400})
    assert r.status_code == 200, r.text
    await sign_in(api, pool, tenant)
    page = (await api.get("/")).text
    assert 'id="storage-title"' in page
    assert "Events are kept 14 days once all their deliveries are finished;" in page
    assert "The oldest event kept was accepted 12 d ago" in page
    sizes = re.findall(r"<td><code>([a-z_]+)</code></td>", page)
    assert {"events", "deliveries", "attempts", "lanes"} <= set(sizes), sizes
    await open_portal(api, api, tenant, "c")
    assert 'id="storage-title"' not in (await api.get("/")).text


def test_a_report_names_every_table_it_removed_from() -> None:
    from hookline.retention import Report

    report = Report()
    assert report.line().startswith("purged nothing")
    report.rows.update({"events": 3, "attempts": 9})
    assert report.line().startswith("purged 3 events, 9 attempts in ")
    assert set(report.rows) <= set(TABLES)
