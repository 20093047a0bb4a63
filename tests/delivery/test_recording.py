"""Recording results: one result the database refuses must not hold up the others."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from delivery.dispatcher import Dispatcher
from delivery.outcome import AttemptResult, Outcome
from delivery.recorder import Recorder
from delivery.retries import Decision
from delivery.transport import create_transport
from hookline.db import Pool
from hookline.metrics import Metrics
from hookline.settings import Settings
from tests.conftest import TenantKey
from tests.receiver import wait_for


async def test_a_refused_result_is_stored_without_its_response_and_the_rest_go_on(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool, settings: Settings
) -> None:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    for path in ("a", "b"):
        r = await api.post(
            "/v1/endpoints",
            headers=tenant.headers,
            json={"subscriber": "c", "url": f"http://127.0.0.1:9/{path}"},
        )
        assert r.status_code == 201
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})
    transport = create_transport(settings)
    dispatcher = Dispatcher(settings, pool, transport, Metrics())
    jobs = await dispatcher._claim(10)
    assert len(jobs) == 2
    now = datetime.now(UTC)
    done = Decision("succeeded", 0, None)
    good = Outcome(
        jobs[0],
        {"webhook-id": "x"},
        AttemptResult(now, 1.0, 200, None, {"server": "t"}, "ok"),
        done,
    )
    # Postgres stores no NUL in text: this body makes the whole batch's statement fail
    poison = Outcome(jobs[1], {}, AttemptResult(now, 1.0, 200, None, {}, "bad\x00body"), done)
    try:
        async with asyncio.timeout(10):  # before, this retried the same batch forever
            await Recorder(settings, pool, Metrics()).record([good, poison])
    finally:
        await transport.aclose()
    rows = await pool.fetch(
        "SELECT d.id, d.status, a.response_body, a.error, a.status_code, l.lease_until"
        " FROM deliveries d JOIN attempts a ON a.delivery_id = d.id"
        " JOIN lanes l ON l.id = d.lane_id"
    )
    by_id = {r["id"]: r for r in rows}
    kept, stripped = by_id[jobs[0]["delivery_id"]], by_id[jobs[1]["delivery_id"]]
    assert kept["status"] == stripped["status"] == "succeeded"
    assert kept["response_body"] == "ok" and kept["error"] is None
    assert stripped["response_body"] == "" and stripped["status_code"] == 200
    assert "could not be stored" in stripped["error"]
    assert kept["lease_until"] is None and stripped["lease_until"] is None


@pytest.mark.slow
async def test_a_delivery_we_cannot_even_prepare_fails_visibly_instead_of_looping(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool, worker: None
) -> None:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    r = await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={"subscriber": "c", "url": "http://127.0.0.1:9/x"},
    )
    # damage the row behind the API's back, as a bad hand edit or a bug would
    await pool.execute(
        "UPDATE endpoints SET headers = '\"not an object\"' WHERE id = $1", r.json()["id"]
    )
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})

    async def dead_lettered() -> bool:
        rows = (await api.get("/v1/deliveries", headers=tenant.headers)).json()["data"]
        return bool(rows) and rows[0]["status"] == "failed"

    await wait_for(dead_lettered, what="the broken delivery to be dead-lettered")
    rows = (await api.get("/v1/deliveries", headers=tenant.headers)).json()["data"]
    assert rows[0]["attempts"] == 3
    assert rows[0]["last_error"].startswith("internal error: AttributeError")
