"""Poison deliveries fail alone: a date at the edge of time, or a delivery that cannot even
be prepared, costs that delivery an attempt (or its cancellation), never its lane's
progress."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from hookline.db import Pool
from tests.api.test_endpoints import make_endpoint, send_event
from tests.conftest import TenantKey
from tests.receiver import Receiver, wait_for


@pytest.mark.parametrize(
    "moment",
    [
        "9999-12-31T23:59:59.999999Z",
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "0001-01-01T00:00:00+01:00",  # before year 1 once in UTC
    ],
)
async def test_an_expiry_outside_the_accepted_range_is_refused_at_the_api(
    api: httpx.AsyncClient, tenant: TenantKey, moment: str
) -> None:
    for path, body in (
        ("/v1/events", {"type": "t", "data": {}, "expires_at": moment}),
        ("/v1/events/batch", {"events": [{"type": "t", "data": {}, "expires_at": moment}]}),
    ):
        r = await api.post(path, headers=tenant.headers, json=body)
        assert r.status_code == 422, r.text
        assert "between 1970-01-01T00:00:00Z and 9999-12-31T00:00:00Z" in r.text


async def test_the_edges_of_the_range_are_accepted(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    for moment in ("9999-12-31T00:00:00Z", "1970-01-01T00:00:00Z"):
        await send_event(api, tenant, expires_at=moment)


async def test_the_database_refuses_an_infinite_expiry_too(pool: Pool, tenant: TenantKey) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO events (tenant_id, type, data, expires_at) "
            "VALUES ($1, 't', '{}', 'infinity')",
            tenant.id,
        )


async def test_stored_infinite_expiries_neither_stall_nor_skip_a_strict_lane(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey, receiver: Receiver, worker: None
) -> None:
    """Rows written before the range was enforced: Postgres judges them, Python never
    sees an infinite date (asyncpg would hand it back without a zone)."""
    await pool.execute("ALTER TABLE events DROP CONSTRAINT events_expires_at_range")
    endpoint = await make_endpoint(api, tenant, receiver.url)
    await api.patch(
        f"/v1/endpoints/{endpoint['id']}", headers=tenant.headers, json={"status": "paused"}
    )
    never = await send_event(api, tenant)
    always = await send_event(api, tenant)
    after = await send_event(api, tenant)
    await pool.execute("UPDATE events SET expires_at = 'infinity' WHERE id = $1", never)
    await pool.execute("UPDATE events SET expires_at = '-infinity' WHERE id = $1", always)
    await api.patch(
        f"/v1/endpoints/{endpoint['id']}", headers=tenant.headers, json={"status": "active"}
    )

    async def statuses() -> dict[str, str]:
        rows = await pool.fetch(
            "SELECT event_id, status FROM deliveries WHERE tenant_id = $1", tenant.id
        )
        return {r["event_id"]: r["status"] for r in rows}

    async def settled() -> bool:
        return "pending" not in (await statuses()).values()

    await wait_for(settled, what="the lane to get through all three")
    assert await statuses() == {never: "succeeded", always: "cancelled", after: "succeeded"}
    assert [r.headers["webhook-id"] for r in receiver.requests] == [never, after]


@pytest.mark.slow
async def test_a_delivery_that_cannot_be_prepared_is_dead_lettered_and_the_lane_goes_on(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey, receiver: Receiver, worker: None
) -> None:
    endpoint = await make_endpoint(api, tenant, receiver.url)
    await api.patch(
        f"/v1/endpoints/{endpoint['id']}", headers=tenant.headers, json={"status": "paused"}
    )
    first, second = await send_event(api, tenant), await send_event(api, tenant)
    # a signing key that cannot be read (a row damaged by hand, say): signing raises
    await pool.execute(
        "UPDATE endpoint_secrets SET secret = 'whsk_not-base64!' WHERE endpoint_id = $1",
        endpoint["id"],
    )
    await api.patch(
        f"/v1/endpoints/{endpoint['id']}", headers=tenant.headers, json={"status": "active"}
    )

    async def finished() -> bool:
        done = await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE tenant_id = $1 AND status = 'failed'",
            tenant.id,
        )
        return bool(done == 2)

    await wait_for(finished, what="both deliveries dead-lettered", timeout=20)
    rows: list[Any] = await pool.fetch(
        "SELECT d.event_id, a.n, a.error FROM attempts a JOIN deliveries d ON d.id = "
        "a.delivery_id WHERE a.tenant_id = $1 ORDER BY d.seq, a.n",
        tenant.id,
    )
    # every try of each (the first and the test schedule's two retries) is on record
    assert [(r["event_id"], r["n"]) for r in rows] == [
        (first, 1),
        (first, 2),
        (first, 3),
        (second, 1),
        (second, 2),
        (second, 3),
    ]
    assert all(r["error"].startswith("internal error: ValueError") for r in rows)
    assert "whsk_not" not in " ".join(r["error"] for r in rows)  # no key material stored
    assert receiver.requests == []
