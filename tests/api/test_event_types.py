"""Event types over HTTP: the catalog, schema versions, the tenant setting, isolation."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from hookline.db import Pool
from hookline.event_types import WORKERS
from hookline.tenants import create_tenant
from tests.conftest import TenantKey
from tests.receiver import wait_for

ORDER_V1 = {
    "type": "object",
    "required": ["order_id"],
    "properties": {"order_id": {"type": "string"}, "total": {"type": "integer"}},
}
ORDER_V2 = {
    "type": "object",
    "required": ["order_id", "amount"],
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
}


@pytest.fixture
async def other(pool: Pool) -> TenantKey:
    created, key = await create_tenant(pool, "Other")
    return TenantKey(created.id, key)


async def _create(api: httpx.AsyncClient, tenant: TenantKey, **body: Any) -> dict[str, Any]:
    r = await api.post("/v1/event-types", headers=tenant.headers, json=body)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def _locs(r: httpx.Response) -> list[list[Any]]:
    assert r.headers["content-type"] == "application/problem+json", r.text
    return [e["loc"] for e in r.json()["errors"]]


async def test_create_read_and_update_an_event_type(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    created = await _create(
        api,
        tenant,
        name="order.created",
        description="An order was placed",
        schema=ORDER_V1,
        example={"order_id": "o_1", "total": 42},
    )
    assert created["name"] == "order.created" and created["description"] == "An order was placed"
    assert created["latest_version"] == 1
    assert created["deprecated"] is False and created["deprecated_at"] is None

    r = await api.get("/v1/event-types/order.created", headers=tenant.headers)
    assert r.status_code == 200 and r.json() == created

    r = await api.patch(
        "/v1/event-types/order.created",
        headers=tenant.headers,
        json={"deprecated": True, "description": "Use order.placed"},
    )
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["deprecated"] is True and patched["deprecated_at"] is not None
    assert patched["description"] == "Use order.placed" and patched["latest_version"] == 1

    r = await api.patch("/v1/event-types/order.created", headers=tenant.headers, json={})
    assert r.json()["deprecated_at"] == patched["deprecated_at"]  # nothing asked, nothing changed
    r = await api.patch(
        "/v1/event-types/order.created", headers=tenant.headers, json={"deprecated": False}
    )
    assert r.json()["deprecated"] is False and r.json()["description"] == "Use order.placed"


async def test_names_are_unique_and_inputs_strict(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    await _create(api, tenant, name="order.created")
    r = await api.post("/v1/event-types", headers=tenant.headers, json={"name": "order.created"})
    assert r.status_code == 409
    r = await api.post("/v1/event-types", headers=tenant.headers, json={"name": "has space"})
    assert r.status_code == 422 and _locs(r) == [["body", "name"]]
    r = await api.post(
        "/v1/event-types", headers=tenant.headers, json={"name": "a.b", "schema_": {}}
    )
    assert r.status_code == 422 and _locs(r) == [["body", "schema_"]]
    r = await api.patch(
        "/v1/event-types/order.created", headers=tenant.headers, json={"name": "renamed"}
    )
    assert r.status_code == 422 and _locs(r) == [["body", "name"]]
    r = await api.post(
        "/v1/event-types", headers=tenant.headers, json={"name": "a.b", "example": {"x": 1}}
    )
    assert r.status_code == 422 and _locs(r) == [["body", "example"]]


async def test_list_in_name_order_with_cursor_and_filter(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    for name in ("b.two", "a.one", "d.four", "c.three"):
        await _create(api, tenant, name=name)
    await api.patch("/v1/event-types/c.three", headers=tenant.headers, json={"deprecated": True})

    r = await api.get("/v1/event-types", headers=tenant.headers, params={"limit": 3})
    first = r.json()
    assert [t["name"] for t in first["data"]] == ["a.one", "b.two", "c.three"]
    assert first["data"][2]["deprecated"] is True  # deprecated types are listed, marked
    assert first["next_cursor"] == "c.three"
    r = await api.get(
        "/v1/event-types", headers=tenant.headers, params={"limit": 3, "cursor": "c.three"}
    )
    assert [t["name"] for t in r.json()["data"]] == ["d.four"] and r.json()["next_cursor"] is None

    r = await api.get("/v1/event-types", headers=tenant.headers, params={"deprecated": "false"})
    assert [t["name"] for t in r.json()["data"]] == ["a.one", "b.two", "d.four"]
    r = await api.get("/v1/event-types", headers=tenant.headers, params={"limit": 0})
    assert r.status_code == 422 and _locs(r) == [["query", "limit"]]


async def test_schema_versions_are_added_listed_and_read(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    await _create(api, tenant, name="order.created", schema=ORDER_V1)
    r = await api.post(
        "/v1/event-types/order.created/schemas",
        headers=tenant.headers,
        json={"schema": ORDER_V2, "example": {"order_id": "o", "amount": 9.5}},
    )
    assert r.status_code == 201, r.text
    v2 = r.json()
    assert v2["version"] == 2 and v2["schema"] == ORDER_V2
    assert v2["example"] == {"order_id": "o", "amount": 9.5}
    r = await api.get("/v1/event-types/order.created", headers=tenant.headers)
    assert r.json()["latest_version"] == 2

    r = await api.get("/v1/event-types/order.created/schemas/1", headers=tenant.headers)
    assert r.status_code == 200 and r.json()["schema"] == ORDER_V1 and r.json()["example"] is None
    for missing in ("3", "0", "x", "99999999999"):
        r = await api.get(
            f"/v1/event-types/order.created/schemas/{missing}", headers=tenant.headers
        )
        assert r.status_code == 404, missing

    r = await api.get(
        "/v1/event-types/order.created/schemas", headers=tenant.headers, params={"limit": 1}
    )
    page = r.json()
    assert [v["version"] for v in page["data"]] == [2] and page["next_cursor"] == "2"
    r = await api.get(
        "/v1/event-types/order.created/schemas",
        headers=tenant.headers,
        params={"limit": 1, "cursor": page["next_cursor"]},
    )
    assert [v["version"] for v in r.json()["data"]] == [1]
    r = await api.get("/v1/event-types/nope/schemas", headers=tenant.headers)
    assert r.status_code == 404


async def test_invalid_schemas_and_examples_are_422_with_paths(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    r = await api.post(
        "/v1/event-types",
        headers=tenant.headers,
        json={"name": "order.created", "schema": {"type": "object", "required": "order_id"}},
    )
    assert r.status_code == 422 and _locs(r) == [["body", "schema", "required"]]
    assert (
        await api.get("/v1/event-types/order.created", headers=tenant.headers)
    ).status_code == 404

    await _create(api, tenant, name="order.created", schema=ORDER_V1)
    r = await api.post(
        "/v1/event-types/order.created/schemas",
        headers=tenant.headers,
        json={"schema": {"properties": {"a": {"$ref": "https://schemas.example/a.json"}}}},
    )
    assert r.status_code == 422 and _locs(r) == [["body", "schema"]]
    assert "not fetched" in r.json()["errors"][0]["msg"]
    r = await api.post(
        "/v1/event-types/order.created/schemas",
        headers=tenant.headers,
        json={"schema": ORDER_V2, "example": {"order_id": 1, "amount": "x"}},
    )
    assert r.status_code == 422
    assert _locs(r) == [["body", "example", "amount"], ["body", "example", "order_id"]]
    r = await api.post("/v1/event-types/order.created/schemas", headers=tenant.headers, json={})
    assert r.status_code == 422 and _locs(r) == [["body", "schema"]]
    r = await api.get("/v1/event-types/order.created", headers=tenant.headers)
    assert r.json()["latest_version"] == 1  # none of those made a version


async def test_the_unknown_event_types_setting(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    r = await api.get("/v1/settings", headers=tenant.headers)
    assert r.status_code == 200 and r.json()["unknown_event_types"] == "accept"
    r = await api.patch(
        "/v1/settings", headers=tenant.headers, json={"unknown_event_types": "refuse"}
    )
    assert r.status_code == 200 and r.json()["unknown_event_types"] == "refuse"
    r = await api.patch("/v1/settings", headers=tenant.headers, json={})
    assert r.json()["unknown_event_types"] == "refuse"
    r = await api.patch("/v1/settings", headers=tenant.headers, json={"unknown_event_types": "x"})
    assert r.status_code == 422 and _locs(r) == [["body", "unknown_event_types"]]
    assert (await api.get("/v1/settings")).status_code == 401


async def test_another_tenants_event_types_are_404(
    api: httpx.AsyncClient, tenant: TenantKey, other: TenantKey
) -> None:
    await _create(api, tenant, name="order.created", schema=ORDER_V1)
    await api.patch("/v1/settings", headers=tenant.headers, json={"unknown_event_types": "refuse"})

    assert (
        await api.get("/v1/event-types/order.created", headers=other.headers)
    ).status_code == 404
    r = await api.patch(
        "/v1/event-types/order.created", headers=other.headers, json={"deprecated": True}
    )
    assert r.status_code == 404
    r = await api.post(
        "/v1/event-types/order.created/schemas", headers=other.headers, json={"schema": ORDER_V2}
    )
    assert r.status_code == 404
    for path in ("/schemas", "/schemas/1"):
        r = await api.get(f"/v1/event-types/order.created{path}", headers=other.headers)
        assert r.status_code == 404, path
    assert (await api.get("/v1/event-types", headers=other.headers)).json()["data"] == []
    r = await api.get("/v1/settings", headers=other.headers)
    assert r.json()["unknown_event_types"] == "accept"  # the first tenant's choice is its own

    # nothing the other tenant tried changed the first tenant's type
    r = await api.get("/v1/event-types/order.created", headers=tenant.headers)
    assert r.json()["deprecated"] is False and r.json()["latest_version"] == 1
    # and the other tenant can have a type of the same name
    assert (await _create(api, other, name="order.created"))["latest_version"] is None


async def test_creating_posts_honour_idempotency_keys(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    headers = tenant.headers | {"idempotency-key": "k-1"}
    body = {"name": "order.created", "schema": ORDER_V1}
    first = await api.post("/v1/event-types", headers=headers, json=body)
    again = await api.post("/v1/event-types", headers=headers, json=body)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    headers = tenant.headers | {"idempotency-key": "k-2"}
    path = "/v1/event-types/order.created/schemas"
    first = await api.post(path, headers=headers, json={"schema": ORDER_V2})
    again = await api.post(path, headers=headers, json={"schema": ORDER_V2})
    assert first.status_code == again.status_code == 201 and again.json()["version"] == 2
    r = await api.get("/v1/event-types/order.created", headers=tenant.headers)
    assert r.json()["latest_version"] == 2  # the retry made no third version


async def test_the_routes_are_in_the_openapi_document(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/v1/event-types"]) == {"get", "post"}
    assert set(paths["/v1/event-types/{name}"]) == {"get", "patch"}
    assert set(paths["/v1/event-types/{name}/schemas"]) == {"get", "post"}
    assert set(paths["/v1/event-types/{name}/schemas/{version}"]) == {"get"}
    assert set(paths["/v1/settings"]) == {"get", "patch"}
    schemas = document["components"]["schemas"]
    assert "schema" in schemas["SchemaVersionIn"]["properties"]  # the wire name, not ours
    assert "schema" in schemas["EventTypeIn"]["properties"]


# -- what a tenant's schema or event may cost ------------------------------------------------
# The probes of the security review (each took seconds, and froze the event loop, before).

REDOS = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}}
# two branches that both recurse: jsonschema tries both at every level, 2^depth work
EXPONENTIAL = {
    "$defs": {
        "node": {
            "anyOf": [
                {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}},
                {
                    "type": "object",
                    "properties": {"next": {"$ref": "#/$defs/node"}},
                    "required": ["never"],
                },
            ]
        }
    },
    "$ref": "#/$defs/node",
}


def _chain(depth: int, leaf: Any) -> Any:
    """``{"next": {"next": ... leaf}}``: a leaf that is no object fails both branches at
    every level, so both are tried at every level."""
    data = leaf
    for _ in range(depth):
        data = {"next": data}
    return data


async def _timed_post(
    api: httpx.AsyncClient, tenant: TenantKey, path: str, body: Any
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    r = await api.post(path, headers=tenant.headers, json=body)
    return r, time.perf_counter() - started


async def test_a_backtracking_pattern_answers_at_once(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    await _create(api, tenant, name="code.sent", schema=REDOS)
    for code, status in [("a" * 28 + "!", 422), ("a" * 10_000 + "!", 422), ("a" * 10_000, 202)]:
        event = {"type": "code.sent", "data": {"code": code}}
        r, took = await _timed_post(api, tenant, "/v1/events", event)
        assert r.status_code == status, r.text
        assert took < 0.5, f"{len(code)} characters took {took:.2f} s"
    assert _locs(
        r := (
            await _timed_post(
                api, tenant, "/v1/events", {"type": "code.sent", "data": {"code": "b"}}
            )
        )[0]
    ) == [["body", "data", "code"]]
    assert "does not match" in r.json()["errors"][0]["msg"]


async def test_unique_items_over_20000_objects(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    schema = {
        "type": "object",
        "properties": {"rows": {"type": "array", "uniqueItems": True}},
    }
    await _create(api, tenant, name="rows.sent", schema=schema)
    rows: list[dict[str, float]] = [{"id": 10_000 + i} for i in range(20_000)]
    body = {"type": "rows.sent", "data": {"rows": rows}}
    assert 250_000 < len(json.dumps(body, separators=(",", ":"))) < 300_000  # the probe's 269 KB
    r, took = await _timed_post(api, tenant, "/v1/events", body)
    assert r.status_code == 202, r.text
    assert took < 1.0
    rows.append({"id": 10_000 + 7.0})  # 10007.0 equals 10007: a duplicate
    r, took = await _timed_post(api, tenant, "/v1/events", body)
    assert r.status_code == 422 and _locs(r) == [["body", "data", "rows"]]
    assert r.json()["errors"][0]["msg"] == "has non-unique elements: item 20000 equals item 7"
    assert took < 1.0


async def test_a_929_kb_schema_is_refused_at_once(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    schema = {
        "type": "object",
        "properties": {
            f"field_{i}": {"type": "string", "description": "x" * 40} for i in range(10_500)
        },
    }
    assert 900_000 < len(json.dumps(schema, separators=(",", ":"))) < 1_000_000
    r, took = await _timed_post(
        api, tenant, "/v1/event-types", {"name": "big.one", "schema": schema}
    )
    assert r.status_code == 422 and _locs(r) == [["body", "schema"]]
    assert "the limit is 65536" in r.json()["errors"][0]["msg"]
    assert took < 1.0


async def test_a_lookahead_is_refused_at_registration_with_its_path(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    schema = {
        "type": "object",
        "properties": {"password": {"type": "string", "pattern": "^(?=.*[0-9]).{8,}$"}},
    }
    r = await api.post(
        "/v1/event-types", headers=tenant.headers, json={"name": "user.created", "schema": schema}
    )
    assert r.status_code == 422 and _locs(r) == [
        ["body", "schema", "properties", "password", "pattern"]
    ]
    msg = r.json()["errors"][0]["msg"]
    assert "lookaheads are not supported" in msg and "linear in the text" in msg


async def test_an_exponential_schema_is_too_costly_at_once(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    await _create(api, tenant, name="tree.grown", schema=EXPONENTIAL)
    r, took = await _timed_post(
        api, tenant, "/v1/events", {"type": "tree.grown", "data": _chain(3, {})}
    )
    assert r.status_code == 202, r.text  # shallow data is cheap and valid
    r, took = await _timed_post(
        api, tenant, "/v1/events", {"type": "tree.grown", "data": _chain(28, 1)}
    )
    assert r.status_code == 422 and _locs(r) == [["body", "data"]]
    assert r.json()["errors"][0]["msg"].startswith("the event is too costly to validate")
    assert took < 1.0


@pytest.mark.slow
async def test_another_tenants_ingest_is_not_slowed_by_costly_events(
    api: httpx.AsyncClient, tenant: TenantKey, other: TenantKey
) -> None:
    """Tenant A sends its most expensive events (each runs to the step budget, ~0.3 s here),
    8 at a time, all along; tenant B sends 200 events one after another. Were validation
    on the event loop, B's requests would wait for A's validations (measured: p99 250 ms);
    in a worker thread that hands the GIL back every ~1 ms, B's p99 stays ~10-15 ms (p50
    5 ms; 3.5 ms with A idle)."""
    await _create(api, tenant, name="tree.grown", schema=EXPONENTIAL)
    heavy = {"type": "tree.grown", "data": _chain(28, 1)}
    await _create(api, other, name="order.created", schema=ORDER_V1)
    light = {"type": "order.created", "data": {"order_id": "o_1", "total": 3}}
    for _ in range(5):  # warm: catalog, validators, connections
        assert (await api.post("/v1/events", headers=other.headers, json=light)).status_code == 202
    done = asyncio.Event()
    refused = 0

    async def flood() -> None:
        nonlocal refused
        while not done.is_set():
            r = await api.post("/v1/events", headers=tenant.headers, json=heavy)
            assert r.status_code == 422 and "too costly" in r.text, r.text
            refused += 1

    flooding = [asyncio.create_task(flood()) for _ in range(8)]
    try:
        await wait_for(lambda: WORKERS.busy(tenant.id) > 0, what="A's events to queue")
        latencies, a_busy = [], []
        for _ in range(200):
            a_busy.append(WORKERS.busy(tenant.id) > 0)
            r, took = await _timed_post(api, other, "/v1/events", light)
            assert r.status_code == 202, r.text
            latencies.append(took)
    finally:
        done.set()
        await asyncio.gather(*flooding)
    latencies.sort()
    p50, p99 = latencies[100], latencies[197]
    assert p99 < 0.1, f"tenant B's p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms"
    assert all(a_busy), "tenant A's validations were not running all along"
    assert refused >= 2
