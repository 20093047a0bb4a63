"""One tenant can never see or touch another tenant's objects.

The walk covers every API route with an object in its path, including routes added after this
test was written: tenant A's key on tenant B's real ids gets 404, for every method, and tenant
B's objects are unchanged afterwards.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from api.openapi import ApiRoute
from composition.web import build_app
from hookline.db import Pool
from hookline.settings import Settings
from hookline.tenants import create_tenant
from tests.api.seeding import ID_SOURCES, Seeded, api_routes, path_parameters, seed
from tests.conftest import TenantKey

# Routes the walk leaves out, each with the reason. Nothing else may be skipped.
EXCLUDED: dict[tuple[str, str], str] = {
    ("GET", "/v1/events/{id}/content"): (
        "authorised by its signed, expiring link (thin payloads), not by the API key"
    ),
}

# Bodies that pass a route's model, by the model's name, where the minimal body that
# _minimal_body builds from the model's JSON Schema does not.
BODIES: dict[str, dict[str, Any]] = {
    "SchemaVersionIn": {"schema": {"type": "object"}},
}


class Walk:
    """Two tenants with real objects, over one app."""

    def __init__(self, client: httpx.AsyncClient, routes: list[ApiRoute]) -> None:
        self.client = client
        self.routes = routes

    def with_ids(self) -> list[ApiRoute]:
        return [r for r in self.routes if "{" in r.operation.path]


@pytest.fixture
async def walk(settings: Settings, pool: Pool, redis: Redis) -> AsyncIterator[Walk]:
    app = build_app(settings, pool, redis)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as client:
        yield Walk(client, api_routes(app.api.routes))


async def _two_tenants(pool: Pool, walk: Walk) -> tuple[Seeded, Seeded]:
    seeded = []
    for tag in ("a", "b"):
        created, key = await create_tenant(pool, f"Tenant {tag.upper()}")
        seeded.append(await seed(walk.client, TenantKey(created.id, key), tag, walk.routes))
    return seeded[0], seeded[1]


def _minimal_body(model: type[BaseModel]) -> dict[str, Any]:
    """A body with the model's required fields filled plainly, checked against the model."""
    body = BODIES.get(model.__name__)
    if body is None:
        schema = model.model_json_schema()
        props = schema.get("properties", {})
        body = {name: _plain_value(props.get(name, {})) for name in schema.get("required", [])}
    try:
        model.model_validate(body)
    except ValidationError as exc:
        pytest.fail(
            f"cannot build a valid {model.__name__} body ({exc.errors()[0]['msg']}): "
            "add one to BODIES in tests/api/test_isolation.py so a 422 cannot hide a "
            "missing 404"
        )
    return body


def _plain_value(schema: dict[str, Any]) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if kind == "string":
        return "isolation.check"
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    return {}


async def _snapshot(walk: Walk, owner: Seeded) -> dict[str, Any]:
    """What ``owner`` reads at every GET route that names one of its objects."""
    seen: dict[str, Any] = {}
    for route in walk.with_ids():
        op = route.operation
        if op.method != "GET" or (op.method, op.path) in EXCLUDED:
            continue
        params = path_parameters(op.path, owner)
        if params is None:
            continue  # reported by the walk itself
        url = op.path.format(**params)
        r = await walk.client.get(url, headers=owner.headers)
        assert r.status_code == 200, f"{owner.tenant.id} cannot read its own {url}: {r.text}"
        seen[url] = r.json()
    return seen


async def test_every_route_with_an_id_hides_other_tenants_objects(walk: Walk, pool: Pool) -> None:
    a, b = await _two_tenants(pool, walk)
    routes = walk.with_ids()
    assert routes, "no API route has a path parameter: is the app built?"
    before = await _snapshot(walk, b)

    unmapped, leaks = [], []
    for route in routes:
        op = route.operation
        if (op.method, op.path) in EXCLUDED:
            continue
        params = path_parameters(op.path, b)
        if params is None:
            unmapped.append(f"{op.method} {op.path}")
            continue
        url = op.path.format(**params)
        body = _minimal_body(op.body) if op.body is not None else None
        r = await walk.client.request(op.method, url, headers=a.headers, json=body)
        if r.status_code != 404 or r.json().get("status") != 404:
            leaks.append(f"{op.method} {url} -> {r.status_code} {r.text[:300]}")

    assert not unmapped, (
        "no id for these routes' path parameters: map each parameter to the kind of object it "
        f"names in ID_SOURCES (tests/api/seeding.py) and seed one: {unmapped}; "
        f"known: {sorted(ID_SOURCES)}"
    )
    assert not leaks, "tenant A reached tenant B's objects:\n" + "\n".join(leaks)
    assert await _snapshot(walk, b) == before, "tenant A's requests changed tenant B's objects"


async def test_filters_and_references_do_not_cross_tenants(walk: Walk, pool: Pool) -> None:
    a, b = await _two_tenants(pool, walk)
    client, h = walk.client, a.headers
    for path, params in (
        ("/v1/deliveries", {"event": b.ids["event"]}),
        ("/v1/deliveries", {"endpoint": b.ids["endpoint"]}),
        ("/v1/endpoints", {"subscriber": b.ids["subscriber"]}),
    ):
        r = await client.get(path, headers=h, params=params)
        assert r.status_code == 200 and r.json()["data"] == [], (path, params, r.text)

    # naming B's subscriber from A's key neither creates anything nor reaches B's endpoint
    r = await client.post(
        "/v1/endpoints",
        headers=h,
        json={"subscriber": b.ids["subscriber"], "url": "http://127.0.0.1:9/x"},
    )
    assert r.status_code in (404, 422), r.text
    r = await client.post(
        "/v1/events",
        headers=h,
        json={"type": "order.created", "subscriber": b.ids["subscriber"], "data": {}},
    )
    assert r.status_code in (202, 404, 422), r.text
    if r.status_code == 202:
        assert r.json()["deliveries"] == 0, r.text
    r = await client.get("/v1/deliveries", headers=b.headers)
    assert [d["id"] for d in r.json()["data"]] == [b.ids["delivery"]]


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer hk_not-a-key"}, {"authorization": "Basic eDp5"}]
)
async def test_every_operation_that_needs_a_key_refuses_requests_without_one(
    walk: Walk, headers: dict[str, str]
) -> None:
    refused = [r for r in walk.routes if r.operation.auth]
    assert refused, "no API route needs a key: is the app built?"
    let_through = []
    for route in refused:
        op = route.operation
        # an id, a body and headers that are all wrong, and an id no object could have:
        # the key is checked before any of them
        body: dict[str, Any] | None = {} if op.body is not None else None
        hostile = {**headers, "idempotency-key": "k" * 300}
        for name in ("x1", "no%20such:thing!"):
            url = re.sub(r"{[a-z_]+}", name, op.path)
            r = await walk.client.request(op.method, url, headers=hostile, json=body)
            if r.status_code != 401 or r.json().get("status") != 401:
                let_through.append(f"{op.method} {url} -> {r.status_code} {r.text[:200]}")
    assert not let_through, "answered without a valid key:\n" + "\n".join(let_through)
