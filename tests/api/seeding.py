"""Real objects in a tenant, made through the API, and the map from path parameters to them.

The isolation and schema tests walk every route that names an object in its path. They find
the id to put there with :func:`path_parameters`, which looks the parameter up in
:data:`ID_SOURCES` by the path in front of it: ``{id}`` after ``/v1/endpoints/`` is an
endpoint's id, after ``/v1/events/`` an event's. A route whose parameter is not in the map gets
no ids, and the isolation test fails until someone extends the map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from api.openapi import ApiRoute
from tests.conftest import TenantKey

# (the path in front of the parameter, the parameter) -> the kind of object it names
ID_SOURCES: dict[tuple[str, str], str] = {
    ("/v1/endpoints/", "id"): "endpoint",
    ("/v1/events/", "id"): "event",
    ("/v1/deliveries/", "id"): "delivery",
    ("/v1/subscribers/", "uid"): "subscriber",
    ("/v1/event-types/", "name"): "event_type",
    ("/v1/event-types/{name}/schemas/", "version"): "schema_version",
    ("/v1/replays/", "id"): "replay",
}


@dataclass
class Seeded:
    """One tenant's key and the ids of the objects made for it, by kind."""

    tenant: TenantKey
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return self.tenant.headers


def path_parameters(path: str, seeded: Seeded) -> dict[str, str] | None:
    """The ids of ``seeded``'s objects for every parameter of ``path``; None if one is unknown."""
    found: dict[str, str] = {}
    for parameter in re.finditer(r"{([a-z_]+)}", path):
        name = parameter.group(1)
        kind = ID_SOURCES.get((path[: parameter.start()], name))
        if kind is None or kind not in seeded.ids:
            return None
        found[name] = seeded.ids[kind]
    return found


def has_route(routes: list[ApiRoute], method: str, path: str) -> bool:
    return any(r.operation.method == method and r.operation.path == path for r in routes)


async def seed(
    client: httpx.AsyncClient, tenant: TenantKey, tag: str, routes: list[ApiRoute]
) -> Seeded:
    """A subscriber, an endpoint on 127.0.0.1, an event type if the API has them, an event
    and its delivery, a replay of the endpoint if the API has them, all in ``tenant`` and
    named with ``tag`` so no other tenant has them."""
    seeded = Seeded(tenant)
    h = tenant.headers

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await client.post(path, headers=h, json=body)
        assert r.is_success, f"seeding {path}: {r.status_code} {r.text}"
        created: dict[str, Any] = r.json()
        return created

    uid = f"cust-{tag}"
    await post("/v1/subscribers", {"uid": uid, "name": f"Customer {tag}"})
    seeded.ids["subscriber"] = uid
    endpoint = await post(
        "/v1/endpoints", {"subscriber": uid, "url": f"http://127.0.0.1:9/hooks/{tag}"}
    )
    seeded.ids["endpoint"] = endpoint["id"]
    event_type = f"order.created.{tag}"
    if has_route(routes, "POST", "/v1/event-types"):
        await post(
            "/v1/event-types",
            {
                "name": event_type,
                "description": f"an order of tenant {tag}",
                "schema": {"type": "object"},
            },
        )
        seeded.ids["event_type"] = event_type
        seeded.ids["schema_version"] = "1"
    event = await post(
        "/v1/events",
        {"type": event_type, "subject": f"order-{tag}", "subscriber": uid, "data": {"n": 1}},
    )
    seeded.ids["event"] = event["id"]
    r = await client.get("/v1/deliveries", headers=h, params={"event": event["id"]})
    assert r.status_code == 200, r.text
    deliveries = r.json()["data"]
    assert len(deliveries) == 1, deliveries
    seeded.ids["delivery"] = deliveries[0]["id"]
    if has_route(routes, "POST", "/v1/replays"):
        replay = await post("/v1/replays", {"endpoint": endpoint["id"], "rate": 1})
        seeded.ids["replay"] = replay["id"]
    return seeded


def api_routes(app_routes: list[Any]) -> list[ApiRoute]:
    """The routes of a built app that are part of the API (made with ``operation``)."""
    return [r for r in app_routes if isinstance(r, ApiRoute)]
