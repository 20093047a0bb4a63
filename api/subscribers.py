"""Subscribers: the tenant's customers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import tenant
from api.http import JSON, page, query_int, read_model, services
from api.schemas import SubscriberIn
from hookline.db import Row
from hookline.subscribers import create_subscriber, get_subscriber, list_subscribers


def subscriber_shape(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "uid": row["uid"],
        "name": row["name"],
        "created_at": row["created_at"],
    }


async def create(request: Request) -> Response:
    owner = await tenant(request)
    body = await read_model(request, SubscriberIn)
    created = await create_subscriber(services(request).pool, owner.id, body.uid, body.name)
    return JSON(subscriber_shape(created), status_code=201)


async def index(request: Request) -> Response:
    owner = await tenant(request)
    limit = query_int(request, "limit", 50, 1, 100)
    rows = await list_subscribers(
        services(request).pool, owner.id, request.query_params.get("cursor"), limit
    )
    return page(rows, limit, subscriber_shape)


async def read(request: Request) -> Response:
    owner = await tenant(request)
    found = await get_subscriber(services(request).pool, owner.id, request.path_params["uid"])
    return JSON(subscriber_shape(found))


routes = [
    Route("/v1/subscribers", create, methods=["POST"]),
    Route("/v1/subscribers", index, methods=["GET"]),
    Route("/v1/subscribers/{uid}", read, methods=["GET"]),
]
