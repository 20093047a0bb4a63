"""Retention at scale: 60 days of history (over 2 million attempts, three tenants with
different retentions, deliveries held since 40 days ago) purged while ingest and delivery
go on; then the space the purge freed is what the next days fill."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from hookline.activity import activity, total
from hookline.db import Pool
from hookline.retention import purge
from hookline.settings import Settings
from hookline.tenants import create_tenant
from tests.conftest import TenantKey, running_worker
from tests.history import counts, seed
from tests.processes import start, stop
from tests.receiver import Receiver, wait_for

DAY = timedelta(days=1)
DAYS = 60
PER_DAY = 2_800  # events a day per tenant, 4 attempts each: 60 x 3 x 2,800 x 4 = 2.0M
RETENTIONS = {"thirty": None, "week": 7, "quarter": 90}  # days; None: the installation's
HELD = 20  # deliveries a paused endpoint holds since 40 days ago, per tenant


async def _endpoint(api: httpx.AsyncClient, tenant: TenantKey, url: str, **more: object) -> str:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    r = await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={"subscriber": "c", "url": url, "ordering": "none", **more},
    )
    assert r.status_code == 201, r.text
    endpoint_id: str = r.json()["id"]
    return endpoint_id


async def _rollups(pool: Pool, tenant_id: str, endpoint_id: str) -> None:
    """A minute rollup every hour of the 60 days, as the recorder would have left them."""
    await pool.execute(
        "INSERT INTO attempt_rollups (endpoint_id, minute, tenant_id, attempts, succeeded,"
        " failed, dead_lettered, duration_ms, latency)"
        " SELECT $1, date_trunc('hour', now()) - make_interval(hours => h), $2, 10, 9, 1, 0,"
        " 100, array_fill(0, ARRAY[12]) || 10 FROM generate_series(1, $3) AS h",
        endpoint_id,
        tenant_id,
        DAYS * 24,
    )


async def _all_time(pool: Pool, tenant_id: str, until: datetime) -> int:
    return int(
        await pool.fetchval(
            "SELECT (SELECT coalesce(sum(attempts), 0) FROM attempt_rollups"
            " WHERE tenant_id = $1 AND minute < $2) + (SELECT coalesce(sum(attempts), 0)"
            " FROM attempt_rollups_hourly WHERE tenant_id = $1 AND hour < $2)",
            tenant_id,
            until,
        )
    )


async def _week(pool: Pool, tenant_id: str, until: datetime) -> int:
    buckets = await activity(
        pool, tenant_id, start=until - 7 * DAY, width=timedelta(hours=1), buckets=7 * 24
    )
    return total(buckets).attempts


async def _size(pool: Pool) -> int:
    # what the space the three big tables hold, once vacuum has made dead rows reusable
    for table in ("attempts", "deliveries", "events", "lanes", "lane_tails"):
        await pool.execute(f"VACUUM {table}")
    return int(
        await pool.fetchval(
            "SELECT sum(pg_total_relation_size(t)) FROM unnest(ARRAY['attempts', 'deliveries',"
            " 'events', 'lanes', 'lane_tails']::regclass[]) AS t"
        )
    )


@pytest.mark.slow
async def test_sixty_days_purged_under_load_keep_what_they_must(
    api: httpx.AsyncClient,
    pool: Pool,
    redis: Redis,
    settings: Settings,
    receiver: Receiver,
) -> None:
    tenants: dict[str, TenantKey] = {}
    endpoints: dict[str, str] = {}
    held: dict[str, str] = {}
    for name, days in RETENTIONS.items():
        made, key = await create_tenant(pool, name)
        tenants[name] = tenant = TenantKey(made.id, key)
        if days is not None:
            r = await api.patch(
                "/v1/settings", headers=tenant.headers, json={"retention": days * 86400}
            )
            assert r.status_code == 200, r.text
        endpoints[name] = await _endpoint(api, tenant, f"{receiver.url}/{name}", max_in_flight=100)
        # (the history's type: what is ingested during the test goes to the other only)
        held[name] = await _endpoint(
            api, tenant, f"{receiver.url}/held-{name}", event_types=["order.created"]
        )
        r = await api.patch(
            f"/v1/endpoints/{held[name]}", headers=tenant.headers, json={"status": "paused"}
        )
        assert r.status_code == 200, r.text
        for day in range(1, DAYS + 1):
            await seed(pool, tenant.id, endpoints[name], age=day * DAY, events=PER_DAY, attempts=4)
        await seed(pool, tenant.id, held[name], age=40 * DAY, events=HELD, status="pending")
        await _rollups(pool, tenant.id, endpoints[name])
    assert await pool.fetchval("SELECT count(*) FROM attempts") >= 2_000_000
    # the dashboard's week up to the hour before the test's own traffic
    started = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    weeks = {n: await _week(pool, t.id, started) for n, t in tenants.items()}
    all_time = {n: await _all_time(pool, t.id, started) for n, t in tenants.items()}

    # ingest and delivery go on while two passes run
    ingested: list[str] = []

    async def produce() -> None:
        while True:
            for tenant in tenants.values():
                r = await api.post(
                    "/v1/events", headers=tenant.headers, json={"type": "t", "data": {}}
                )
                assert r.status_code == 202, r.text
                ingested.append(r.json()["id"])
            await asyncio.sleep(0.02)  # a steady trickle (~100/s), not a synchronisation

    # the worker runs no pass of its own: the test's two are the ones it judges
    worker = settings.model_copy(update={"purge_interval": 0})
    async with running_worker(worker, pool, redis):
        producing = asyncio.create_task(produce())
        try:
            # at full speed (share=1): the bench measures what the pacing spares traffic;
            # the week's tenant has more than one pass's share to remove (100,000 events)
            reports = [await purge(settings, share=1) for _ in range(2)]
        finally:
            producing.cancel()
            await asyncio.gather(producing, return_exceptions=True)
        await wait_for(
            lambda: len({r.headers["webhook-id"] for r in receiver.requests}) >= len(ingested),
            timeout=60,
            what="every event ingested during the purge delivered",
        )
    assert reports[0] is not None and reports[1] is not None
    print(f"\n{reports[0].line()} with {len(ingested)} events ingested and delivered meanwhile")

    for name, tenant in tenants.items():
        keep = RETENTIONS[name] or 30
        ages = await pool.fetch(
            "SELECT d.endpoint_id, count(*) AS n, max(now() - e.created_at) AS oldest"
            " FROM events e JOIN deliveries d ON d.event_id = e.id"
            " WHERE e.tenant_id = $1 GROUP BY d.endpoint_id",
            tenant.id,
        )
        by_endpoint = {a["endpoint_id"]: a for a in ages}
        # everything past the retention gone; every day within it whole (the day seeded
        # at exactly the retention's age was past it by the time the pass ran)
        kept = by_endpoint[endpoints[name]]
        assert kept["oldest"] < (keep + 1) * DAY, name
        seeded_kept = min(keep - 1, DAYS) * PER_DAY
        assert kept["n"] >= seeded_kept, (name, kept["n"], seeded_kept)
        # what the paused endpoint holds stays, attempts and all, however old
        assert by_endpoint[held[name]]["n"] == HELD, name
        # the dashboard's week is what it was; nothing counted was lost, only folded
        assert await _week(pool, tenant.id, started) == weeks[name], name
        assert await _all_time(pool, tenant.id, started) == all_time[name], name
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM attempt_rollups WHERE minute < now() - interval '35 days'"
        )
        == 0
    )

    # the held deliveries still go out once their endpoints are resumed
    async with running_worker(worker, pool, redis):
        for name, tenant in tenants.items():
            r = await api.patch(
                f"/v1/endpoints/{held[name]}", headers=tenant.headers, json={"status": "active"}
            )
            assert r.status_code == 200, r.text

        def delivered() -> bool:
            paths = [r.path for r in receiver.requests if "/held-" in r.path]
            return len(paths) == HELD * len(tenants)

        await wait_for(delivered, timeout=30, what="the held deliveries after the resume")

    # a day later: a new day's events come in, the oldest kept day goes, and the space the
    # first pass freed takes them (the tables do not grow)
    before = await _size(pool)
    for name, tenant in tenants.items():
        await seed(pool, tenant.id, endpoints[name], age=timedelta(0), events=PER_DAY, attempts=4)
        keep = RETENTIONS[name] or 30
        if keep < DAYS:
            await pool.execute(
                "UPDATE tenants SET retention = $2 WHERE id = $1", tenant.id, (keep - 1) * 86400
            )
    later = await purge(settings, share=1)
    assert later is not None
    assert later.rows["events"] >= 2 * PER_DAY, later.line()
    after = await _size(pool)
    assert after <= before * 1.05, (before, after)


@pytest.mark.slow
async def test_a_purge_killed_mid_pass_leaves_nothing_half_removed(
    api: httpx.AsyncClient,
    pool: Pool,
    settings: Settings,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """``hookline purge`` is SIGKILLed once it has removed part of the history: every
    event left has all of its deliveries and attempts, no lane lost its tail, and the
    next pass removes the rest."""
    made, key = await create_tenant(pool, "Killed")
    tenant = TenantKey(made.id, key)
    endpoint = await _endpoint(api, tenant, receiver.url)
    for day in range(31, 41):
        await seed(pool, tenant.id, endpoint, age=day * DAY, events=10_000, attempts=3)
    young = await seed(pool, tenant.id, endpoint, age=DAY, events=100, attempts=3)
    process = start(settings, "purge", log=tmp_path / "purge.log")
    try:

        async def part_gone() -> bool:
            left = await pool.fetchval("SELECT count(*) FROM events")
            return bool(left < 100_100 - 5_000)

        await wait_for(part_gone, timeout=60, what="the purge to be under way")
    finally:
        stop(process, signal.SIGKILL)
    left = await counts(pool, tenant.id)
    assert 100 < left["events"] < 100_100, left
    # each event whole: one delivery, three attempts, its own lane and that lane's tail
    assert left["deliveries"] == left["events"] and left["attempts"] == 3 * left["events"]
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM lanes l WHERE NOT EXISTS"
            " (SELECT 1 FROM lane_tails t WHERE t.lane_id = l.id)"
        )
        == 0
    )
    assert left["lanes"] == left["events"], left  # no lane left behind without its event
    report = await purge(settings, share=1)
    assert report is not None
    assert report.rows["events"] == left["events"] - 100, report.line()
    assert await counts(pool, tenant.id) == {
        "events": 100,
        "deliveries": 100,
        "attempts": 300,
        "lanes": 100,
    }
    assert {r["id"] for r in await pool.fetch("SELECT id FROM events")} == set(young)
