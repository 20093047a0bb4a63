"""Endpoints: where a subscriber's webhooks go, and their signing secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant
from api.http import JSON, page, read_model, read_query, services
from api.openapi import operation
from api.schemas import ListQuery, Name, Page, Strict, Text, Url
from hookline.db import Row
from hookline.endpoints import create_endpoint, current_secret, get_endpoint, list_endpoints

# headers hookline sets itself; an endpoint's custom headers may not replace them
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "hookline-attempt",
        "hookline-sequence",
        "transfer-encoding",
        "connection",
    }
)


class EndpointIn(Strict):
    subscriber: Name = Field(description="uid of the subscriber that owns the endpoint.")
    url: Url
    description: Text = ""
    event_types: Annotated[list[Name], Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="Types to receive; absent: all."
    )
    ordering: Literal["strict", "keyed", "none"] = "strict"
    on_exhausted: Literal["dead_letter", "pause"] = "dead_letter"
    payload: Literal["thin", "full"] = "thin"
    format: Literal["standard", "cloudevents"] = "standard"
    timeout: Annotated[float, Field(gt=0, le=30)] | None = None
    rate_limit: Annotated[int, Field(gt=0, le=100_000)] | None = None
    max_in_flight: Annotated[int, Field(ge=1, le=1000)] = 1
    headers: dict[
        Annotated[str, Field(max_length=100, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")],
        Annotated[str, Field(max_length=1000, pattern=r"^[^\r\n]*$")],
    ] = Field(default_factory=dict, max_length=20)

    @field_validator("headers")
    @classmethod
    def _no_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        clash = sorted(k for k in value if k.lower() in RESERVED_HEADERS)
        if clash:
            raise ValueError(f"hookline sets these headers itself: {', '.join(clash)}")
        return value


class EndpointOut(BaseModel):
    id: str
    subscriber: str
    url: str
    description: str
    event_types: list[str] | None
    ordering: Literal["strict", "keyed", "none"]
    on_exhausted: Literal["dead_letter", "pause"]
    payload: Literal["thin", "full"]
    format: Literal["standard", "cloudevents"]
    timeout: float | None
    rate_limit: int | None
    max_in_flight: int
    headers: dict[str, str]
    status: Literal["active", "paused", "disabled"]
    status_reason: str
    created_at: datetime
    updated_at: datetime


class SecretOut(BaseModel):
    key: str = Field(description="The current signing secret, `whsec_...`.")


class EndpointsQuery(ListQuery):
    subscriber: Annotated[str, Field(max_length=200)] | None = None


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
    query = read_query(request, EndpointsQuery)
    rows = await list_endpoints(
        services(request).pool, owner.id, query.subscriber, query.cursor, query.limit
    )
    return page(rows, query.limit, endpoint_shape)


async def read(request: Request) -> Response:
    owner = await tenant(request)
    found = await get_endpoint(services(request).pool, owner.id, request.path_params["id"])
    return JSON(endpoint_shape(found))


async def secret(request: Request) -> Response:
    owner = await tenant(request)
    key = await current_secret(services(request).pool, owner.id, request.path_params["id"])
    return JSON({"key": key})


TAG = "Endpoints"
routes = [
    operation(
        "POST",
        "/v1/endpoints",
        create,
        summary="Register an endpoint",
        tag=TAG,
        body=EndpointIn,
        response=EndpointOut,
        status=201,
        errors=(400, 422),
    ),
    operation(
        "GET",
        "/v1/endpoints",
        index,
        summary="List endpoints",
        tag=TAG,
        query=EndpointsQuery,
        response=Page[EndpointOut],
        errors=(422,),
    ),
    operation(
        "GET",
        "/v1/endpoints/{id}",
        read,
        summary="Get an endpoint",
        tag=TAG,
        response=EndpointOut,
        errors=(404,),
    ),
    operation(
        "GET",
        "/v1/endpoints/{id}/secret",
        secret,
        summary="Reveal the signing secret",
        tag=TAG,
        response=SecretOut,
        errors=(404,),
    ),
]
