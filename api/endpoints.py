"""Endpoints: where a subscriber's webhooks go, and their signing secrets."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import tenant
from api.http import JSON, page, query_int, read_model, services
from api.schemas import EndpointIn
from hookline.db import Row
from hookline.endpoints import create_endpoint, current_secret, get_endpoint, list_endpoints

_FIELDS = (
    "id",
    "subscriber",
    "url",
    "description",
    "event_types",
    "ordering",
    "on_exhausted",
    "payload",
    "format",
    "timeout",
    "rate_limit",
    "max_in_flight",
    "status",
    "status_reason",
    "created_at",
    "updated_at",
)


def endpoint_shape(row: Row) -> dict[str, Any]:
    shaped = {field: row[field] for field in _FIELDS}
    shaped["headers"] = orjson.Fragment(row["headers"])
    return shaped


async def create(request: Request) -> Response:
    owner = await tenant(request)
    body = await read_model(request, EndpointIn)
    svc = services(request)
    created = await create_endpoint(
        svc.pool, owner.id, svc.settings.allowed_networks, body.model_dump()
    )
    return JSON(endpoint_shape(created), status_code=201)


async def index(request: Request) -> Response:
    owner = await tenant(request)
    limit = query_int(request, "limit", 50, 1, 100)
    params = request.query_params
    rows = await list_endpoints(
        services(request).pool, owner.id, params.get("subscriber"), params.get("cursor"), limit
    )
    return page(rows, limit, endpoint_shape)


async def read(request: Request) -> Response:
    owner = await tenant(request)
    found = await get_endpoint(services(request).pool, owner.id, request.path_params["id"])
    return JSON(endpoint_shape(found))


async def secret(request: Request) -> Response:
    owner = await tenant(request)
    key = await current_secret(services(request).pool, owner.id, request.path_params["id"])
    return JSON({"key": key})


routes = [
    Route("/v1/endpoints", create, methods=["POST"]),
    Route("/v1/endpoints", index, methods=["GET"]),
    Route("/v1/endpoints/{id}", read, methods=["GET"]),
    Route("/v1/endpoints/{id}/secret", secret, methods=["GET"]),
]
