"""The overview, events and event-type pages, over HTTP in process: the numbers and charts
come from rollups (a million attempts are never read), both audiences see their own scope,
and everything from payloads and schemas shows escaped."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from composition.web import build_app
from dashboard import charts
from hookline.activity import percentile, window
from hookline.db import Pool, open_pool
from hookline.migrations import migrate
from hookline.settings import Settings
from hookline.tenants import create_user
from tests.conftest import TenantKey, make_settings, running_worker
from tests.dashboard.sessions import EMAIL, PASSWORD, log_in, open_portal, sign_in
from tests.receiver import Received, Receiver, wait_for


async def _portal(api: httpx.AsyncClient, tenant: TenantKey, uid: str) -> None:
    """Sign in as subscriber ``uid`` through a portal link (instead of anyone before)."""
    api.cookies.clear()
    await open_portal(api, api, tenant, uid)


async def _subscriber(api: httpx.AsyncClient, tenant: TenantKey, uid: str) -> None:
    r = await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": uid, "name": uid})
    assert r.status_code == 201, r.text


async def _endpoint(api: httpx.AsyncClient, tenant: TenantKey, uid: str, url: str) -> str:
    r = await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={"subscriber": uid, "url": url, "ordering": "none", "max_in_flight": 10},
    )
    assert r.status_code == 201, r.text
    endpoint_id: str = r.json()["id"]
    return endpoint_id


async def _send(api: httpx.AsyncClient, tenant: TenantKey, **fields: Any) -> str:
    r = await api.post("/v1/events", headers=tenant.headers, json={"data": {}, **fields})
    assert r.status_code == 202, r.text
    event_id: str = r.json()["id"]
    return event_id


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _stat(page: str, label: str) -> tuple[str, str]:
    """The value and the line under it of the stat card ``label``, as text."""
    found = re.search(
        rf'<div class="label">{label}</div>\s*<div class="value[^"]*">(.*?)</div>\s*'
        r'<div class="sub">(.*?)</div>',
        page,
        re.S,
    )
    assert found, f"no {label} card"
    return _text(found.group(1)), _text(found.group(2))


# -- the overview ------------------------------------------------------------------------


async def test_an_empty_tenant_is_shown_its_first_steps_not_empty_charts(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    await sign_in(api, pool, tenant)
    page = (await api.get("/")).text
    assert "Register an endpoint" in page and 'href="/endpoints/new"' in page
    assert "<svg" not in page and "Send an event" in page

    await _subscriber(api, tenant, "c1")
    await _endpoint(api, tenant, "c1", "http://127.0.0.1:9/x")
    page = (await api.get("/")).text
    assert "Done: 1 endpoint registered" in page and "<svg" not in page

    await _subscriber(api, tenant, "c2")  # no endpoint of its own yet
    await _portal(api, tenant, "c2")
    page = (await api.get("/")).text
    assert "Welcome, c2" in page and 'href="/endpoints/new"' in page and "<svg" not in page


@pytest.mark.slow
async def test_the_overview_counts_what_the_worker_recorded_in_each_scope(
    api: httpx.AsyncClient,
    pool: Pool,
    redis: Redis,
    settings: Settings,
    tenant: TenantKey,
    receiver: Receiver,
) -> None:
    def respond(r: Received) -> web.Response:
        return web.Response(status=500 if r.path == "/bad" else 204)

    receiver.respond = respond
    base = f"http://127.0.0.1:{receiver.port}"
    for uid in ("c1", "c2"):
        await _subscriber(api, tenant, uid)
    await _endpoint(api, tenant, "c1", f"{base}/good")
    bad = await _endpoint(api, tenant, "c1", f"{base}/bad")
    await _endpoint(api, tenant, "c2", f"{base}/other")
    for i in range(5):
        await _send(api, tenant, type="order.created", data={"i": i})

    async def settled() -> bool:
        rows = await pool.fetch("SELECT status FROM deliveries")
        return len(rows) == 15 and all(r["status"] in ("succeeded", "failed") for r in rows)

    async with running_worker(settings, pool, redis):  # 2 retries, then dead letters
        await wait_for(settled, timeout=30, what="every delivery to finish")

    await sign_in(api, pool, tenant)
    page = (await api.get("/")).text
    # 5 + 5 delivered at once; 5 x 3 attempts to /bad, all failed, then dead-lettered
    assert _stat(page, "Delivered") == ("10", "25 attempts, 15 failed")
    assert _stat(page, "Success rate")[0] == "40.0%"
    assert _stat(page, "Dead letters") == ("5", "5 dead-lettered last 24 hours")
    assert _stat(page, "Queue backlog") == ("0", "nothing waiting to be sent")
    assert page.count('<svg class="chart') == 3
    assert 'class="bar-ok"' in page and 'class="bar-bad"' in page
    assert 'class="line ok"' in page and 'class="line p95"' in page
    assert "Succeeded" in page and "p95" in page  # the legends
    assert f'href="/endpoints/{bad}"' in page and "15 failed in a row" in page
    for key in ("1h", "7d", "nonsense"):
        r = await api.get("/", params={"range": key})
        assert r.status_code == 200 and _stat(r.text, "Delivered")[0] == "10"
    assert 'aria-current="page">Last 7 days' in (await api.get("/?range=7d")).text

    await _portal(api, tenant, "c2")
    page = (await api.get("/")).text
    assert _stat(page, "Delivered") == ("5", "5 attempts, 0 failed")
    assert _stat(page, "Dead letters")[0] == "0"
    assert bad not in page and "None: the last attempt to every endpoint succeeded" in page

    await _portal(api, tenant, "c1")
    page = (await api.get("/")).text
    assert _stat(page, "Delivered") == ("5", "20 attempts, 15 failed")
    assert _stat(page, "Dead letters")[0] == "5" and f'href="/endpoints/{bad}"' in page


# -- a large history ---------------------------------------------------------------------

_SEED = (
    # 10 endpoints (2 of subscriber a, 8 of b), 1,000 events to each: 10,000 deliveries, the
    # last of every hundred events failed (dead-lettered)
    """INSERT INTO endpoints (id, tenant_id, subscriber_id, url)
       SELECT 'ep_big' || i, $1,
              (SELECT id FROM subscribers WHERE tenant_id = $1
               AND uid = CASE WHEN i <= 2 THEN 'a' ELSE 'b' END),
              'http://127.0.0.1:9/' || i
       FROM generate_series(1, 10) i""",
    "INSERT INTO lanes (tenant_id, endpoint_id, key)"
    " SELECT tenant_id, id, '' FROM endpoints WHERE tenant_id = $1",
    """INSERT INTO events (id, tenant_id, type, data, created_at)
       SELECT 'evt_big' || lpad(i::text, 5, '0'), $1, 'order.created', '{}',
              now() - interval '6 days'
       FROM generate_series(1, 1000) i""",
    """INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, lane_id, seq, status,
                               attempts)
       SELECT 'dlv_big' || lpad(e::text, 5, '0') || '_' || p, $1,
              'evt_big' || lpad(e::text, 5, '0'), l.endpoint_id, l.id, e,
              CASE WHEN e % 100 = 0 THEN 'failed' ELSE 'succeeded' END, 100
       FROM generate_series(1, 1000) e, generate_series(1, 10) p
       JOIN lanes l ON l.endpoint_id = 'ep_big' || p""",
    # 1,000,000 attempts, 100 per delivery, spread over the last 6 days: 10% answered 500,
    # 2% no answer, the rest 200; durations from 0 to 3 s
    """INSERT INTO attempts (id, delivery_id, tenant_id, n, started_at, duration_ms,
                             status_code, error)
       SELECT 'att_big' || i,
              'dlv_big' || lpad((i / 1000 + 1)::text, 5, '0') || '_' || (i / 100 % 10 + 1),
              $1, i % 100 + 1,
              now() - interval '1 minute' - interval '6 days' * (i / 1000000.0),
              (i * 37 % 3000)::real,
              CASE WHEN i % 10 = 0 THEN 500 WHEN i % 50 = 1 THEN NULL ELSE 200 END,
              CASE WHEN i % 50 = 1 THEN 'timed out' END
       FROM generate_series(0, 999999) i""",
)

# what the overview should say, counted the slow way: over the attempts themselves
_EXPECTED = """
SELECT width_bucket(a.duration_ms, hookline_latency_bounds()) AS bucket, count(*) AS n,
       count(*) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS ok
FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE a.started_at >= $1 AND ($2::text[] IS NULL OR d.endpoint_id = ANY ($2))
GROUP BY 1
"""


@contextlib.asynccontextmanager
async def _app_that_cannot_read_attempts(
    settings: Settings, pool: Pool, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app on a pool whose role may not read ``attempts`` at all: any query of
    a page that touched the table (a scan, an index, a join) fails and the page is a 500."""
    role = f"hookline_no_attempts_{os.getpid()}_{secrets.token_hex(3)}"
    await pool.execute(f'CREATE ROLE "{role}"')
    try:
        await pool.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}";'
            f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}";'
            f'REVOKE ALL ON attempts FROM "{role}"'
        )
        # asyncpg passes unknown URL parameters as settings: every connection runs as role
        narrow = make_settings(f"{settings.database_url}?role={role}", settings.redis_url or "")
        async with open_pool(narrow, size=2) as narrow_pool:
            denied = "permission denied"
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match=denied):
                await narrow_pool.fetchval("SELECT count(*) FROM attempts")
            app = build_app(narrow, narrow_pool, redis)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
                yield client
    finally:
        await pool.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


@pytest.mark.slow
async def test_a_million_attempts_are_counted_from_rollups_without_reading_attempts(
    api: httpx.AsyncClient, pool: Pool, redis: Redis, settings: Settings, tenant: TenantKey
) -> None:
    for uid in ("a", "b"):
        await _subscriber(api, tenant, uid)
    async with pool.acquire() as seeder, seeder.transaction():
        # the rows are made consistent by construction: skip the foreign key checks,
        # which would triple the time the seed takes
        await seeder.execute("SET LOCAL session_replication_role = replica")
        for statement in _SEED:
            await seeder.execute(statement, tenant.id)
    # roll the history up as an installation upgrading to rollups would: by migration
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "DROP TABLE attempt_rollups; DROP FUNCTION hookline_latency_bounds,"
            " hookline_add_counts; DELETE FROM schema_migrations WHERE version = 14"
        )
        assert await migrate(conn) == ["0014_attempt_rollups"]
    finally:
        await conn.close()
    await pool.execute("ANALYZE")

    async def expected(start: datetime, endpoints: list[str] | None) -> dict[str, Any]:
        latency, ok = [0] * 13, 0
        for row in await pool.fetch(_EXPECTED, start, endpoints):
            latency[row["bucket"]] = row["n"]
            ok += row["ok"]
        return {"attempts": sum(latency), "ok": ok, "latency": latency}

    await create_user(pool, tenant.id, EMAIL, PASSWORD)
    async with _app_that_cannot_read_attempts(settings, pool, redis) as client:
        r = await log_in(client)
        assert r.status_code == 303
        began = time.perf_counter()
        r = await client.get("/", params={"range": "7d"})
        took = time.perf_counter() - began
        assert r.status_code == 200, r.text
        print(f"overview over 7 days of 1,000,000 attempts rendered in {took * 1000:.0f} ms")
        seven = window(datetime.now(UTC), timedelta(hours=1), 168)
        everything = await expected(seven, None)
        assert everything["attempts"] == 1_000_000
        assert _stat(r.text, "Delivered") == ("880,000", "1,000,000 attempts, 120,000 failed")
        assert _stat(r.text, "Success rate")[0] == "88.0%"
        assert _stat(r.text, "Dead letters") == ("100", "100 dead-lettered last 7 days")
        p95 = percentile(everything["latency"], 0.95)
        assert p95 is not None and _stat(r.text, "p95 latency")[0] == charts.ms_label(p95)

        for key, width, buckets in (("24h", 15, 96), ("1h", 1, 60)):
            start = window(datetime.now(UTC), timedelta(minutes=width), buckets)
            r = await client.get("/", params={"range": key})
            assert r.status_code == 200, r.text
            want = await expected(start, None)
            assert 0 < want["attempts"] < 1_000_000
            assert _stat(r.text, "Delivered")[0] == f"{want['ok']:,}", key

        await _portal(client, tenant, "a")
        r = await client.get("/", params={"range": "7d"})
        assert r.status_code == 200, r.text
        mine = await expected(seven, ["ep_big1", "ep_big2"])
        assert mine["attempts"] == 200_000
        shown = f"{mine['attempts']:,} attempts, {mine['attempts'] - mine['ok']:,} failed"
        assert _stat(r.text, "Delivered") == (f"{mine['ok']:,}", shown)
        assert _stat(r.text, "Dead letters")[0] == "20"


# -- events ------------------------------------------------------------------------------


async def test_events_show_their_fan_out_and_their_data_escaped(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    await sign_in(api, pool, tenant)
    page = (await api.get("/events")).text
    assert "No events yet" in page and "POST /v1/events" in page

    await _subscriber(api, tenant, "c1")
    first = await _endpoint(api, tenant, "c1", "http://127.0.0.1:9/a")
    await _endpoint(api, tenant, "c1", "http://127.0.0.1:9/b")
    evil = await _send(
        api,
        tenant,
        type="order.created",
        subject="order_1",
        id="my-own-id",
        data={"note": "<script>alert(1)</script>", "n": 1},
    )
    other = await _send(api, tenant, type="invoice.paid", data={})
    await pool.execute(
        "UPDATE deliveries SET status = 'succeeded' WHERE event_id = $1 AND endpoint_id = $2",
        evil,
        first,
    )
    page = (await api.get("/events")).text
    assert evil in page and other in page and "order_1" in page
    assert "1 delivered · 1 pending" in page and "2 pending" in page

    page = (await api.get("/events", params={"type": "invoice.paid"})).text
    assert other in page and evil not in page
    r = await api.get("/events", params={"q": "my-own-id"})  # the producer's own id
    assert r.status_code == 303 and r.headers["location"] == f"/events/{evil}"
    r = await api.get("/events", params={"q": evil})
    assert r.status_code == 303 and r.headers["location"] == f"/events/{evil}"
    r = await api.get("/events", params={"q": "evt_nothing"})
    assert r.status_code == 400 and "No event with this id" in r.text

    r = await api.get(f"/events/{evil}")
    assert r.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>alert" not in r.text
    assert "\n  &#34;n&#34;: 1" in r.text  # pretty-printed, quotes escaped too
    assert r.text.count('href="/deliveries/dlv_') == 2 and "1 delivered · 1 pending" in r.text
    assert (await api.get("/events/evt_nothing")).status_code == 404


async def test_a_subscriber_sees_only_the_events_delivered_to_it(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    for uid in ("c1", "c2"):
        await _subscriber(api, tenant, uid)
        await _endpoint(api, tenant, uid, f"http://127.0.0.1:9/{uid}")
    everyone = await _send(api, tenant, type="t")
    only_c1 = await _send(api, tenant, type="t", subscriber="c1")

    await _portal(api, tenant, "c2")
    page = (await api.get("/events")).text
    assert everyone in page and only_c1 not in page
    assert "1 pending" in page and "2 pending" not in page  # its own delivery only
    assert (await api.get(f"/events/{only_c1}")).status_code == 404
    r = await api.get("/events", params={"q": only_c1})
    assert r.status_code == 400 and "No event with this id" in r.text
    page = (await api.get(f"/events/{everyone}")).text
    assert page.count('href="/deliveries/dlv_') == 1
    assert "127.0.0.1:9/c2" in page and "127.0.0.1:9/c1" not in page

    await _portal(api, tenant, "c1")
    assert (await api.get(f"/events/{only_c1}")).status_code == 200


async def test_the_catalog_shows_each_type_with_its_schemas_and_examples(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    await sign_in(api, pool, tenant)
    assert "No event types yet" in (await api.get("/event-types")).text
    schema = {
        "type": "object",
        "properties": {"id": {"type": "string", "description": "<b>the order</b>"}},
        "required": ["id"],
    }
    r = await api.post(
        "/v1/event-types",
        headers=tenant.headers,
        json={
            "name": "order.created",
            "description": "An order was placed <i>now</i>",
            "schema": schema,
            "example": {"id": "ord_1"},
        },
    )
    assert r.status_code == 201, r.text
    r = await api.post(
        "/v1/event-types/order.created/schemas",
        headers=tenant.headers,
        json={"schema": {**schema, "required": []}},
    )
    assert r.status_code == 201, r.text
    r = await api.post("/v1/event-types", headers=tenant.headers, json={"name": "old.thing"})
    await api.patch("/v1/event-types/old.thing", headers=tenant.headers, json={"deprecated": True})

    page = (await api.get("/event-types")).text
    assert 'href="/event-types/order.created"' in page and "schema v2" in page
    assert "An order was placed &lt;i&gt;now&lt;/i&gt;" in page
    assert re.search(r"old\.thing</a>\s*<span class=\"badge deprecated\"", page)

    page = (await api.get("/event-types/order.created")).text
    assert "Version 2" in page and "Version 1" in page
    assert "&lt;b&gt;the order&lt;/b&gt;" in page and "&#34;ord_1&#34;" in page
    assert "No example for this version." in page  # version 2 has none
    assert "Deprecated since" in (await api.get("/event-types/old.thing")).text
    assert (await api.get("/event-types/nothing.here")).status_code == 404

    await _subscriber(api, tenant, "c1")
    await _portal(api, tenant, "c1")  # subscribers read the catalog too
    page = (await api.get("/event-types/order.created")).text
    assert "Version 2" in page


# -- charts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peak", "whole", "expected"),
    [
        (0, True, (4.0, 1.0)),
        (3, True, (3.0, 1.0)),
        (7, True, (8, 2)),
        (99, True, (100, 25)),
        (101, True, (150, 50)),
        (55_000, True, (60_000, 20_000)),
        (0.3, False, (0.3, 0.1)),
        (2_850, False, (3_000, 1_000)),
    ],
)
def test_the_y_axis_ends_on_a_round_number(
    peak: float, whole: bool, expected: tuple[float, float]
) -> None:
    assert charts.nice_scale(peak, whole=whole) == pytest.approx(expected)


def test_a_chart_escapes_its_labels_and_breaks_lines_where_there_is_no_value() -> None:
    labels = ["<a>", "b", "c", "d"]
    svg = str(charts.stacked_bars("Volume <x>", labels, [1, 0, 2, 0], [1, 0, 0, 0]))
    assert "&lt;a&gt;" in svg and "<a>" not in svg and "Volume &lt;x&gt;" in svg
    assert svg.count('class="bar-ok"') == 2 and svg.count('class="bar-bad"') == 1
    series = charts.Series("p50", [1.0, None, 3.0, 4.0])
    svg = str(charts.lines("Latency", labels, [series], charts.ms_label))
    path = re.search(r'<path class="line" d="([^"]+)"', svg)
    assert path, svg
    # a lone value is a dot; the line starts after the gap
    assert path.group(1).startswith("M2.5 ") and path.group(1).count("M") == 1
    assert svg.count("<circle") == 1 and 'cx="12.50%"' in svg
    assert svg.count('class="hit"') == 3 and "d: p50 4 ms" in svg  # tooltips, no gap one
