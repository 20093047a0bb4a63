"""Endpoint health: failing runs, warnings, disabling, recovery and operational events.

Flows run a real worker against real receivers; the batch test records one hand-made batch
of results for several endpoints at once. Where a test needs an endpoint to have been
failing for a long time, it moves the start of the run back in the database rather than
waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from delivery.dispatcher import Dispatcher
from delivery.outcome import AttemptResult, Outcome
from delivery.recorder import Recorder
from delivery.retries import Decision
from delivery.transport import create_transport
from hookline.db import Pool
from hookline.metrics import Metrics
from hookline.settings import Settings
from hookline.tenants import create_tenant
from tests.conftest import Backing, TenantKey, make_settings, running_worker
from tests.receiver import Receiver, wait_for

OPS_TYPES = ["endpoint.failing", "endpoint.disabled", "endpoint.recovered", "delivery.failed"]
DOWN = "http://127.0.0.1:9/down"  # nothing listens: for endpoints no worker sends to


@pytest.fixture
def settings(database_url: str, backing: Backing) -> Settings:
    # quick retries, so a failing endpoint keeps failing many times a second; a disable
    # period so long that only the policies a test sets decide
    return make_settings(
        database_url,
        backing.redis_url,
        retry_schedule=[0.05] * 4,
        endpoint_disable_after=100_000.0,
    )


@pytest.fixture
async def ops() -> AsyncIterator[Receiver]:
    """The tenant's operational endpoint's receiver."""
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


async def _endpoint(
    api: httpx.AsyncClient, tenant: TenantKey, uid: str, url: str, **fields: Any
) -> dict[str, Any]:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": uid})
    r = await api.post(
        "/v1/endpoints", headers=tenant.headers, json={"subscriber": uid, "url": url, **fields}
    )
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def _get(api: httpx.AsyncClient, tenant: TenantKey, endpoint_id: str) -> dict[str, Any]:
    r = await api.get(f"/v1/endpoints/{endpoint_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def _operational(
    api: httpx.AsyncClient, tenant: TenantKey, url: str, **fields: Any
) -> tuple[str, Webhook]:
    """Register the operational endpoint (full payloads) and name it in the settings."""
    fields = {"payload": "full", "event_types": OPS_TYPES, **fields}
    ops = await _endpoint(api, tenant, "ops", url, **fields)
    r = await api.patch(
        "/v1/settings", headers=tenant.headers, json={"operational_endpoint": ops["id"]}
    )
    assert r.status_code == 200 and r.json()["operational_endpoint"] == ops["id"], r.text
    secret = await api.get(f"/v1/endpoints/{ops['id']}/secret", headers=tenant.headers)
    return ops["id"], Webhook(secret.json()["key"])


def _received(ops: Receiver, verifier: Webhook) -> list[dict[str, Any]]:
    """The operational events a receiver got, in order, each signature verified."""
    return [verifier.verify(got.body, got.headers) for got in ops.requests]


async def _failing_for(pool: Pool, endpoint_id: str, seconds: float, warned: int = 0) -> None:
    """Make the endpoint look as if it had been failing for ``seconds`` already."""
    await pool.execute(
        "UPDATE endpoints SET failing_since = now() - make_interval(secs => $2),"
        " consecutive_failures = 3, health_warning = $3 WHERE id = $1",
        endpoint_id,
        seconds,
        warned,
    )


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.slow
async def test_a_failing_endpoint_is_warned_about_disabled_then_recovers(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    pool: Pool,
    redis: Redis,
    settings: Settings,
    receiver: Receiver,
    ops: Receiver,
) -> None:
    receiver.respond = lambda got: web.Response(status=500, text="down for maintenance")
    ops_id, verifier = await _operational(api, tenant, ops.url)
    # 4 s without a success: the first delivery's five tries (0.2 s of retry waits) fit
    # in it however busy the machine is, so a dead letter comes before the disable
    ep = await _endpoint(api, tenant, "c", receiver.url, disable_after=4)
    batch = {"events": [{"type": "t", "data": {"n": n}, "subscriber": "c"} for n in range(40)]}
    async with running_worker(settings, pool, redis):
        r = await api.post("/v1/events/batch", headers=tenant.headers, json=batch)
        assert r.status_code == 202, r.text

        async def disabled() -> bool:
            return bool((await _get(api, tenant, ep["id"]))["status"] == "disabled")

        await wait_for(disabled, what="the failing endpoint to be disabled")
        sent = len(receiver.requests)
        found = await _get(api, tenant, ep["id"])
        reason, health = found["status_reason"], found["health"]
        assert "failing since" in reason and "HTTP 500" in reason, reason
        assert "disabled after 00:00:04 without a success" in reason, reason
        assert health["warning"] == 100 and health["disabled_at"] is not None
        assert health["consecutive_failures"] >= 5  # at least one delivery's every try
        # its lane is parked with deliveries still waiting, and new events pass it by
        parked = await pool.fetchrow(
            "SELECT count(*) FILTER (WHERE ready_at IS NOT NULL OR lease_until IS NOT NULL)"
            " AS scheduled, count(*) AS lanes FROM lanes WHERE endpoint_id = $1",
            ep["id"],
        )
        assert parked is not None and parked["scheduled"] == 0 and parked["lanes"] == 1
        r = await api.post(
            "/v1/events", headers=tenant.headers, json={"type": "t", "data": {}, "subscriber": "c"}
        )
        assert r.json()["deliveries"] == 0

        dead = await api.get(
            "/v1/deliveries",
            params={"endpoint": ep["id"], "status": "failed", "limit": 100},
            headers=tenant.headers,
        )
        dead_letters = {d["id"] for d in dead.json()["data"]}
        assert dead_letters

        def told() -> bool:
            got = _received(ops, verifier)
            failed = {e["data"]["delivery_id"] for e in got if e["type"] == "delivery.failed"}
            return failed == dead_letters and "endpoint.disabled" in {e["type"] for e in got}

        await wait_for(told, what="the operational endpoint to hear of it all")
        assert len(receiver.requests) == sent  # nothing more went to the disabled endpoint

        got = _received(ops, verifier)
        assert {e["subject"] for e in got} == {ep["id"]}
        about_endpoint = [e for e in got if e["type"] != "delivery.failed"]
        assert [e["type"] for e in about_endpoint][-1] == "endpoint.disabled"
        levels = [e["data"]["warning"] for e in about_endpoint[:-1]]
        # 50% of the period, then 90% unless no failure happened to be recorded in that
        # last tenth: never the same warning twice, never a warning out of order
        assert about_endpoint[0]["type"] == "endpoint.failing" and levels in ([50], [50, 90])
        for warning in about_endpoint[:-1]:
            data = warning["data"]
            assert data["endpoint_id"] == ep["id"] and data["subscriber"] == "c"
            assert data["url"] == receiver.url and data["last_status"] == 500
            assert _at(data["disable_at"]) - _at(data["failing_since"]) == timedelta(seconds=4)
        notice = about_endpoint[-1]["data"]
        assert notice["reason"] == reason and notice["last_status"] == 500
        disabled_at = _at(health["disabled_at"])
        assert abs(_at(notice["disabled_at"]) - disabled_at) < timedelta(milliseconds=1)
        assert notice["consecutive_failures"] == health["consecutive_failures"]
        for failed in (e["data"] for e in got if e["type"] == "delivery.failed"):
            assert failed["event_type"] == "t" and failed["attempts"] == 5
            assert failed["last_status"] == 500 and failed["endpoint_id"] == ep["id"]

        # fixed and re-enabled: what waited is sent, the first success reports a recovery
        receiver.respond = None
        r = await api.patch(
            f"/v1/endpoints/{ep['id']}", headers=tenant.headers, json={"status": "active"}
        )
        assert r.status_code == 200, r.text
        offer = r.json()["replay_offer"]
        assert offer["since"] == health["disabled_at"]
        assert offer["until"] == r.json()["updated_at"]
        assert _at(offer["until"]) > _at(offer["since"])
        assert offer["replay"] == f"/v1/endpoints/{ep['id']}/replay"
        fresh = r.json()["health"]
        assert fresh == {
            "consecutive_failures": 0,
            "failing_since": None,
            "disabled_at": health["disabled_at"],  # until the first success
            "warning": 0,
        }

        await wait_for(
            lambda: _received(ops, verifier)[-1]["type"] == "endpoint.recovered",
            what="the recovery to be reported",
        )
        recovered = _received(ops, verifier)[-1]["data"]
        assert recovered["endpoint_id"] == ep["id"] and recovered["disabled_at"] is not None
        assert _at(recovered["recovered_at"]) > _at(recovered["disabled_at"])
        assert (await _get(api, tenant, ep["id"]))["health"]["disabled_at"] is None
        again = await api.patch(
            f"/v1/endpoints/{ep['id']}", headers=tenant.headers, json={"status": "active"}
        )
        assert "replay_offer" not in again.json()  # it was not disabled
    assert ops_id not in {e["subject"] for e in _received(ops, verifier)}


async def test_the_disable_period_of_the_endpoint_beats_the_tenants_beats_the_installations(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    pool: Pool,
    redis: Redis,
    settings: Settings,
    receiver: Receiver,
) -> None:
    receiver.respond = lambda got: web.Response(status=503)
    r = await api.patch("/v1/settings", headers=tenant.headers, json={"disable_after": 1000})
    assert r.status_code == 200 and r.json()["disable_after"] == 1000
    own = await _endpoint(api, tenant, "c", receiver.url + "/own", disable_after=100)
    inherits = await _endpoint(api, tenant, "c", receiver.url + "/inherits")
    for endpoint in (own, inherits):
        await _failing_for(pool, endpoint["id"], 910)
    async with running_worker(settings, pool, redis):
        await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})

        async def judged() -> bool:
            a, b = await _get(api, tenant, own["id"]), await _get(api, tenant, inherits["id"])
            return bool(a["status"] == "disabled" and b["health"]["warning"] == 90)

        # 910 s is past the endpoint's own 100 s, and 91% of the tenant's 1000 s
        await wait_for(judged, what="the endpoint's own period to disable, the tenant's to warn")
        assert (await _get(api, tenant, inherits["id"]))["status"] == "active"

        r = await api.patch("/v1/settings", headers=tenant.headers, json={"disable_after": None})
        assert r.json()["disable_after"] is None
        installation = await _endpoint(api, tenant, "d", receiver.url + "/installation")
        await _failing_for(pool, installation["id"], 60_000)
        await api.post(
            "/v1/events", headers=tenant.headers, json={"type": "t", "data": {}, "subscriber": "d"}
        )

        async def warned() -> bool:
            return bool((await _get(api, tenant, installation["id"]))["health"]["warning"] == 50)

        # 60,000 s is 60% of the installation's 100,000 s
        await wait_for(warned, what="the installation's period to warn")
        assert (await _get(api, tenant, installation["id"]))["status"] == "active"
    # this tenant names no operational endpoint: nothing is written for one
    assert await pool.fetchval("SELECT count(*) FROM operational_notices") == 0
    assert not await pool.fetchval("SELECT count(*) FROM events WHERE type LIKE 'endpoint.%'")


@pytest.mark.slow
async def test_an_operational_endpoint_that_fails_is_never_told_about_itself(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    pool: Pool,
    redis: Redis,
    settings: Settings,
    receiver: Receiver,
) -> None:
    receiver.respond = lambda got: web.Response(status=500)
    # it takes every type: the failing endpoint's dead letters, and ordinary events
    ops_id, _ = await _operational(
        api, tenant, receiver.url + "/ops", payload="thin", event_types=None, disable_after=1
    )
    # ordering none: its 20 deliveries fail side by side, not one after another
    other = await _endpoint(
        api, tenant, "c", receiver.url + "/other", disable_after=1000, ordering="none"
    )
    async with running_worker(settings, pool, redis):
        await api.post(
            "/v1/events/batch",
            headers=tenant.headers,
            json={"events": [{"type": "t", "data": {}} for _ in range(20)]},
        )

        async def settled() -> bool:
            # the other endpoint's 20 dead letters in (the operational endpoint's one
            # attempt can disable it before they are), and every notice handled
            ops = await _get(api, tenant, ops_id)
            dead = await pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE endpoint_id = $1 AND status = 'failed'",
                other["id"],
            )
            left = await pool.fetchval("SELECT count(*) FROM operational_notices")
            return bool(ops["status"] == "disabled" and dead == 20 and left == 0)

        await wait_for(
            settled, timeout=30, what="the operational endpoint disabled, every notice handled"
        )
    rows = await pool.fetch(
        "SELECT type, subject FROM events WHERE type = ANY ($1::text[])", OPS_TYPES
    )
    assert rows, "the other endpoint's dead letters were reported"
    assert {r["subject"] for r in rows} == {other["id"]}  # none about the ops endpoint
    to_ops = [got for got in receiver.requests if got.path == "/hook/ops"]
    assert to_ops and all(orjson.loads(got.body).get("subject") != ops_id for got in to_ops)


async def test_a_notice_left_in_the_outbox_is_published_by_the_sweep(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    pool: Pool,
    redis: Redis,
    settings: Settings,
    ops: Receiver,
) -> None:
    ops_id, verifier = await _operational(api, tenant, ops.url)
    ep = await _endpoint(api, tenant, "c", DOWN)
    # as if a worker died between recording a disable and publishing its notice; and one
    # about the operational endpoint itself, written before it became the operational one
    for about in (ops_id, ep["id"]):
        await pool.execute(
            "INSERT INTO operational_notices (tenant_id, endpoint_id, type, data)"
            " VALUES ($1, $2, 'endpoint.disabled', $3)",
            tenant.id,
            about,
            {"endpoint_id": about, "reason": "left behind"},
        )
    async with running_worker(settings, pool, redis):
        await wait_for(lambda: len(ops.requests) == 1, what="the sweep to publish the notice")
    [event] = _received(ops, verifier)
    assert event["type"] == "endpoint.disabled" and event["subject"] == ep["id"]
    assert event["data"] == {"endpoint_id": ep["id"], "reason": "left behind"}
    assert await pool.fetchval("SELECT count(*) FROM operational_notices") == 0
    assert await pool.fetchval("SELECT count(*) FROM events") == 1


async def test_one_batch_of_results_for_several_endpoints_is_judged_per_endpoint(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool, settings: Settings
) -> None:
    ops_id, _ = await _operational(api, tenant, DOWN + "/ops")
    names = ("warned", "healthy", "recovers", "disabled", "exhausted", "gone")
    ids: dict[str, str] = {}
    for name in names:
        parallel = name in ("warned", "recovers")  # two lanes: two results in the batch
        ep = await _endpoint(
            api,
            tenant,
            "c",
            f"{DOWN}/{name}",
            disable_after=100,
            ordering="none" if parallel else "strict",
        )
        ids[name] = ep["id"]
    await _failing_for(pool, ids["warned"], 91)
    await _failing_for(pool, ids["recovers"], 60, warned=50)
    await _failing_for(pool, ids["disabled"], 200)
    healthy_row = await pool.fetchval(
        "SELECT xmin::text FROM endpoints WHERE id = $1", ids["healthy"]
    )
    for _ in range(2):
        await api.post(
            "/v1/events", headers=tenant.headers, json={"type": "t", "data": {}, "subscriber": "c"}
        )

    transport = create_transport(settings)
    try:
        dispatcher = Dispatcher(settings, pool, transport, Metrics())
        jobs = await dispatcher._claim(50)
        by_endpoint: dict[str, list[Any]] = {}
        for job in jobs:
            by_endpoint.setdefault(job["endpoint_id"], []).append(job)
        start = datetime.now(UTC) - timedelta(seconds=1)
        retry = Decision("retrying", 1, datetime.now(UTC) + timedelta(seconds=60))
        ok = Decision("succeeded", 0, None)

        def outcome(name: str, n: int, status: int, decision: Decision, ms: int) -> Outcome:
            at = start + timedelta(milliseconds=ms)
            result = AttemptResult(at, 1.0, status, None, {}, "")
            return Outcome(by_endpoint[ids[name]][n], {}, result, decision)

        batch = [
            outcome("warned", 0, 500, retry, 0),
            outcome("warned", 1, 500, retry, 1),
            outcome("healthy", 0, 200, ok, 2),
            outcome("recovers", 1, 502, retry, 4),  # after the success: a new run
            outcome("recovers", 0, 200, ok, 3),
            outcome("disabled", 0, 500, retry, 5),
            outcome("exhausted", 0, 500, Decision("failed", 0, None, None, "exhausted"), 6),
            outcome(
                "gone", 0, 410, Decision("failed", 0, None, "disable", "the endpoint said 410"), 7
            ),
        ]
        async with asyncio.timeout(10):
            await Recorder(settings, pool, Metrics()).record(batch)
    finally:
        await transport.aclose()

    rows = await pool.fetch(
        "SELECT id, status, consecutive_failures, failing_since, health_warning, disabled_at,"
        " xmin::text AS version FROM endpoints WHERE id = ANY ($1::text[])",
        list(ids.values()),
    )
    health = {r["id"]: r for r in rows}
    warned, healthy, recovers = (health[ids[n]] for n in ("warned", "healthy", "recovers"))
    assert (warned["status"], warned["consecutive_failures"], warned["health_warning"]) == (
        "active",
        5,
        90,
    )
    assert healthy["version"] == healthy_row  # a healthy endpoint's success writes nothing
    assert recovers["consecutive_failures"] == 1 and recovers["health_warning"] == 0
    assert recovers["failing_since"] == start + timedelta(milliseconds=4)
    for name in ("disabled", "gone"):
        assert health[ids[name]]["status"] == "disabled" and health[ids[name]]["disabled_at"]
    assert health[ids["exhausted"]]["status"] == "active"

    events = await pool.fetch(
        "SELECT ev.type, ev.subject, ev.data::text AS data, d.endpoint_id FROM events ev"
        " JOIN deliveries d ON d.event_id = ev.id"
        " WHERE ev.type = ANY ($1::text[]) ORDER BY ev.id",
        OPS_TYPES,
    )
    assert {e["endpoint_id"] for e in events} == {ops_id}  # delivered there and only there
    told = sorted((e["subject"], e["type"], orjson.loads(e["data"])) for e in events)
    expected = sorted(
        [
            (ids["warned"], "endpoint.failing"),
            (ids["recovers"], "endpoint.recovered"),
            (ids["disabled"], "endpoint.disabled"),
            (ids["exhausted"], "delivery.failed"),
            (ids["gone"], "endpoint.disabled"),
            (ids["gone"], "delivery.failed"),
        ]
    )
    assert [(s, t) for s, t, _ in told] == expected
    data = {(s, t): d for s, t, d in told}
    assert data[(ids["warned"], "endpoint.failing")]["warning"] == 90
    assert data[(ids["warned"], "endpoint.failing")]["consecutive_failures"] == 5
    assert data[(ids["recovers"], "endpoint.recovered")]["recovered_at"] is not None
    assert data[(ids["gone"], "endpoint.disabled")]["last_status"] == 410
    exhausted = data[(ids["exhausted"], "delivery.failed")]
    assert exhausted["attempts"] == 1 and exhausted["event_type"] == "t"
    assert exhausted["delivery_id"] == by_endpoint[ids["exhausted"]][0]["delivery_id"]
    assert await pool.fetchval("SELECT count(*) FROM operational_notices") == 0


async def test_the_settings_and_endpoint_fields_of_health(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool
) -> None:
    ep = await _endpoint(api, tenant, "c", DOWN, disable_after=7200)
    assert ep["disable_after"] == 7200
    assert ep["health"] == {
        "consecutive_failures": 0,
        "failing_since": None,
        "disabled_at": None,
        "warning": 0,
    }
    path = f"/v1/endpoints/{ep['id']}"
    for bad in (0, 0.5, -1, 90 * 86400 + 1, "5d"):
        for url, field in ((path, "disable_after"), ("/v1/settings", "disable_after")):
            r = await api.patch(url, headers=tenant.headers, json={field: bad})
            assert r.status_code == 422, (url, bad, r.text)
    r = await api.patch(path, headers=tenant.headers, json={"disable_after": None})
    assert r.json()["disable_after"] is None
    r = await api.patch(path, headers=tenant.headers, json={"status": "paused"})
    r = await api.patch(path, headers=tenant.headers, json={"status": "active"})
    assert r.status_code == 200 and "replay_offer" not in r.json()  # paused, not disabled

    _, other_key = await create_tenant(pool, "Other")
    theirs = {"authorization": f"Bearer {other_key}"}
    await api.post("/v1/subscribers", headers=theirs, json={"uid": "x"})
    their_ep = await api.post(
        "/v1/endpoints", headers=theirs, json={"subscriber": "x", "url": DOWN}
    )
    for unknown in ("ep_nope", their_ep.json()["id"]):
        r = await api.patch(
            "/v1/settings", headers=tenant.headers, json={"operational_endpoint": unknown}
        )
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["loc"] == ["body", "operational_endpoint"]
        assert "no endpoint" in r.json()["detail"]
    r = await api.patch(
        "/v1/settings",
        headers=tenant.headers,
        json={"operational_endpoint": ep["id"], "disable_after": 3600},
    )
    assert r.status_code == 200, r.text
    assert (await api.get("/v1/settings", headers=tenant.headers)).json() == {
        "unknown_event_types": "accept",
        "retry_schedule": None,
        "delivery_timeout": None,
        "disable_after": 3600,
        "operational_endpoint": ep["id"],
        "retention": None,
    }
    # deleting the operational endpoint leaves the tenant with none
    assert (await api.delete(path, headers=tenant.headers)).status_code == 204
    settings = (await api.get("/v1/settings", headers=tenant.headers)).json()
    assert settings["operational_endpoint"] is None and settings["disable_after"] == 3600
    r = await api.patch("/v1/settings", headers=tenant.headers, json={"disable_after": None})
    assert r.json()["disable_after"] is None
