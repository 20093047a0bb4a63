"""Regressions of the low findings of the security probe, one test each, and the API key
cache's bound on how long a removed key keeps working."""

from __future__ import annotations

import time

import httpx
import pytest

from hookline.db import Pool
from tests.api.test_endpoints import make_endpoint
from tests.conftest import TenantKey
from tests.receiver import wait_for


async def test_deleting_an_endpoint_with_many_lanes_takes_no_scan_per_lane(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    """Each lane deleted used to scan every delivery (lane_id had only a partial index)."""
    doomed = await make_endpoint(api, tenant, "http://127.0.0.1:9/a", ordering="none")
    kept = await make_endpoint(api, tenant, "http://127.0.0.1:9/b", ordering="none")
    # 5,000 finished deliveries in their own lanes for each endpoint, written directly
    await pool.execute(
        """
        WITH ev AS (
            INSERT INTO events (tenant_id, type, data)
            SELECT $1, 't', '{}' FROM generate_series(1, 5000) RETURNING id
        ), lane AS (
            INSERT INTO lanes (tenant_id, endpoint_id, key)
            SELECT $1, e.id, ev.id FROM ev, endpoints e WHERE e.id = ANY ($2::text[])
            RETURNING id, endpoint_id, key
        )
        INSERT INTO deliveries (tenant_id, event_id, endpoint_id, lane_id, seq, status)
        SELECT $1, key, endpoint_id, id, 1, 'succeeded' FROM lane
        """,
        tenant.id,
        [doomed["id"], kept["id"]],
    )
    started = time.monotonic()
    r = await api.delete(f"/v1/endpoints/{doomed['id']}", headers=tenant.headers)
    took = time.monotonic() - started
    assert r.status_code == 204
    assert await pool.fetchval("SELECT count(*) FROM lanes") == 5000
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 5000
    print(f"\nan endpoint with 5,000 lanes deleted in {took:.2f} s")
    assert took < 2  # a scan of every delivery per lane: 5.5 s here, minutes at scale


async def test_a_replay_window_far_in_the_past_is_refused_not_a_500(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    for since in ("0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z"):
        r = await api.post(
            "/v1/replays", headers=tenant.headers, json={"since": since, "dry_run": True}
        )
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["loc"] == ["body", "since"]
    r = await api.post(
        "/v1/replays",
        headers=tenant.headers,
        json={"since": "1970-01-01T00:00:00Z", "dry_run": True},
    )
    assert r.status_code == 200 and r.json() == {"count": 0}


@pytest.mark.slow
async def test_a_removed_api_key_stops_working_within_two_seconds(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    """Keys are cached per process so ingest skips a query per request; a key that is
    gone from the database is refused once its cache entry runs out (a second)."""
    assert (await api.get("/v1/endpoints", headers=tenant.headers)).status_code == 200
    await pool.execute("DELETE FROM api_keys WHERE tenant_id = $1", tenant.id)

    async def refused() -> bool:
        return (await api.get("/v1/endpoints", headers=tenant.headers)).status_code == 401

    await wait_for(refused, timeout=2, what="the removed key to be refused")
    r = await api.get("/v1/endpoints", headers=tenant.headers)
    assert r.status_code == 401 and "not valid" in r.json()["detail"]
