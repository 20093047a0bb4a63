"""Ingest: ``POST /v1/events`` and reading events back."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant
from api.http import JSON, read_model, read_query, services
from api.openapi import operation
from api.schemas import EventAccepted, EventContentQuery, EventIn, EventOut
from hookline.db import QUERIES, Row
from hookline.events import get_event, ingest_event
from hookline.links import verify_event_link


def event_shape(row: Row) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "id": row["id"],
        "type": row["type"],
        "timestamp": row["created_at"],
        "data": orjson.Fragment(row["data"]),
    }
    for field in ("subject", "url", "ordering_key", "subscriber", "producer_id"):
        if row.get(field) is not None:
            shaped[field] = row[field]
    return shaped


async def create_event(request: Request) -> Response:
    """Commit the event and its deliveries, then ring the workers' doorbell."""
    owner = await tenant(request)
    event = await read_model(request, EventIn)
    svc = services(request)
    accepted = await ingest_event(svc.pool, owner.id, event.model_dump())
    svc.doorbell.ring()
    return JSON(
        {
            "id": accepted.id,
            "type": event.type,
            "timestamp": accepted.created_at,
            "deliveries": accepted.deliveries,
        },
        status_code=202,
    )


async def read_event(request: Request) -> Response:
    owner = await tenant(request)
    found = await get_event(services(request).pool, owner.id, request.path_params["id"])
    return JSON(event_shape(found))


async def event_content(request: Request) -> Response:
    """The full event behind a thin payload's signed, expiring ``links.event`` URL."""
    svc = services(request)
    event_id = request.path_params["id"]
    query = read_query(request, EventContentQuery)
    secret_key = svc.settings.secret_key or ""
    if not verify_event_link(secret_key, event_id, query.expires, query.sig):
        raise HTTPException(404, "this link is not valid or has expired")
    found = await svc.pool.fetchrow(QUERIES["get_event_by_id"], event_id)
    if found is None:
        raise HTTPException(404, "this link is not valid or has expired")
    return JSON(event_shape(dict(found)))


TAG = "Events"
routes = [
    operation(
        "POST",
        "/v1/events",
        create_event,
        summary="Send an event",
        tag=TAG,
        body=EventIn,
        response=EventAccepted,
        status=202,
        errors=(400, 409, 422),
    ),
    operation(
        "GET",
        "/v1/events/{id}",
        read_event,
        summary="Get an event",
        tag=TAG,
        response=EventOut,
        errors=(404,),
    ),
    operation(
        "GET",
        "/v1/events/{id}/content",
        event_content,
        tag=TAG,
        auth=False,
        summary="Fetch an event through a thin payload's signed link",
        query=EventContentQuery,
        response=EventOut,
        errors=(404, 422),
    ),
]
