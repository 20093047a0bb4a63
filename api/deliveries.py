"""Deliveries and their attempts; manual retry."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant
from api.http import JSON, page, read_query
from api.openapi import operation
from api.schemas import DeliveriesQuery, DeliveryOut, Page
from hookline.db import Row
from hookline.deliveries import STATUS_CLASSES, get_delivery, list_deliveries, retry_delivery
from hookline.services import services

_FIELDS = (
    "id",
    "event_id",
    "endpoint_id",
    "event_type",
    "seq",
    "status",
    "attempts",
    "next_attempt_at",
    "last_status",
    "last_error",
    "created_at",
    "updated_at",
)


def delivery_shape(row: Row) -> dict[str, Any]:
    shaped = {field: row[field] for field in _FIELDS}
    if row["status"] not in ("pending", "retrying"):
        shaped["next_attempt_at"] = None
    if "attempts_list" in row:
        shaped["attempt_history"] = [_attempt_shape(a) for a in row["attempts_list"]]
    return shaped


def _attempt_shape(row: Row) -> dict[str, Any]:
    return {
        "n": row["n"],
        "started_at": row["started_at"],
        "duration_ms": row["duration_ms"],
        "status_code": row["status_code"],
        "error": row["error"],
        "request_headers": orjson.Fragment(row["request_headers"]),
        "response_headers": orjson.Fragment(row["response_headers"]),
        "response_body": row["response_body"],
        "next_attempt_at": row["next_attempt_at"],
    }


async def index(request: Request) -> Response:
    owner = await tenant(request)
    query = read_query(request, DeliveriesQuery)
    rows = await list_deliveries(
        services(request).pool,
        owner.id,
        endpoint=query.endpoint,
        event=query.event,
        status=query.status,
        cursor=query.cursor,
        limit=query.limit,
        after=query.after,
        before=query.before,
        status_class=None if query.http_status is None else STATUS_CLASSES[query.http_status],
    )
    return page(rows, query.limit, delivery_shape)


async def read(request: Request) -> Response:
    owner = await tenant(request)
    found = await get_delivery(services(request).pool, owner.id, request.path_params["id"])
    return JSON(delivery_shape(found))


async def retry(request: Request) -> Response:
    owner = await tenant(request)
    svc = services(request)
    found = await retry_delivery(
        svc.pool, owner.id, request.path_params["id"], svc.settings.retry_schedule
    )
    svc.doorbell.ring()
    return JSON(delivery_shape(found), status_code=202)


TAG = "Deliveries"
routes = [
    operation(
        "GET",
        "/v1/deliveries",
        index,
        summary="List deliveries",
        tag=TAG,
        query=DeliveriesQuery,
        response=Page[DeliveryOut],
        errors=(422,),
    ),
    operation(
        "GET",
        "/v1/deliveries/{id}",
        read,
        summary="Get a delivery with its attempts",
        tag=TAG,
        response=DeliveryOut,
        errors=(404,),
    ),
    operation(
        "POST",
        "/v1/deliveries/{id}/retry",
        retry,
        summary="Retry a delivery",
        tag=TAG,
        response=DeliveryOut,
        status=202,
        errors=(404, 409),
    ),
]
