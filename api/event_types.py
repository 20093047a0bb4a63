"""Event types: the tenant's catalog of event names, with JSON Schema versions per type."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant
from api.http import JSON, read_model, read_query
from api.openapi import operation
from api.schemas import ListQuery, Name, Page, Strict, Text
from hookline.db import Row
from hookline.errors import NotFound
from hookline.event_types import (
    add_schema_version,
    create_event_type,
    get_event_type,
    get_schema_version,
    list_event_types,
    list_schema_versions,
    update_event_type,
)
from hookline.services import services

_SCHEMA = (
    "A JSON Schema (draft 2020-12) that every event's `data` must match. `$ref` resolves "
    "only within the document (use `$defs`); `format` is not asserted."
)
_EXAMPLE = "An example `data` object; it must match the schema."


class EventTypeIn(Strict):
    name: Name = Field(
        description="What events of this type carry as `type`, e.g. `order.created`."
    )
    description: Text = ""
    json_schema: dict[str, Any] | None = Field(
        default=None, alias="schema", description=_SCHEMA + " Becomes schema version 1."
    )
    example: dict[str, Any] | None = Field(default=None, description=_EXAMPLE)


class EventTypePatch(Strict):
    description: Text | None = Field(default=None, description="Absent or null: unchanged.")
    deprecated: bool | None = Field(
        default=None,
        description="Deprecate (true) or undeprecate (false); absent or null: unchanged. "
        "Advisory: events of a deprecated type are still accepted and delivered.",
    )


class EventTypeOut(BaseModel):
    name: str
    description: str
    deprecated: bool
    deprecated_at: datetime | None
    latest_version: int | None = Field(
        description="The newest schema version (versions are 1 to this); null: no schema."
    )
    created_at: datetime
    updated_at: datetime


class SchemaVersionIn(Strict):
    json_schema: dict[str, Any] = Field(alias="schema", description=_SCHEMA)
    example: dict[str, Any] | None = Field(default=None, description=_EXAMPLE)


class SchemaVersionOut(BaseModel):
    version: int
    json_schema: dict[str, Any] = Field(alias="schema")
    example: dict[str, Any] | None
    created_at: datetime


class EventTypesQuery(ListQuery):
    deprecated: bool | None = Field(default=None, description="Only (un)deprecated types.")


class SchemaVersionsQuery(Strict):
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    cursor: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None  # a Postgres integer


def event_type_shape(row: Row) -> dict[str, Any]:
    return {
        "name": row["name"],
        "description": row["description"],
        "deprecated": row["deprecated_at"] is not None,
        "deprecated_at": row["deprecated_at"],
        "latest_version": row["latest_version"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def schema_version_shape(row: Row) -> dict[str, Any]:
    # schema and example come back as JSON text: spliced in, not parsed and encoded again
    example = row["example"]
    return {
        "version": row["version"],
        "schema": orjson.Fragment(row["schema"]),
        "example": None if example is None else orjson.Fragment(example),
        "created_at": row["created_at"],
    }


async def create(request: Request) -> Response:
    """A new event type; with `schema`, it starts at schema version 1."""
    owner = await tenant(request)
    body = await read_model(request, EventTypeIn)
    svc = services(request)
    created = await create_event_type(
        svc.pool,
        owner.id,
        body.name,
        body.description,
        body.json_schema,
        body.example,
        quota=svc.settings.tenant_max_event_types,
    )
    return JSON(event_type_shape(created), status_code=201)


async def index(request: Request) -> Response:
    """Event types in name order; deprecated ones included unless filtered out."""
    owner = await tenant(request)
    query = read_query(request, EventTypesQuery)
    rows = await list_event_types(
        services(request).pool, owner.id, query.cursor, query.limit, query.deprecated
    )
    cursor = rows[-1]["name"] if len(rows) == query.limit else None
    return JSON({"data": [event_type_shape(r) for r in rows], "next_cursor": cursor})


async def read(request: Request) -> Response:
    owner = await tenant(request)
    found = await get_event_type(services(request).pool, owner.id, request.path_params["name"])
    return JSON(event_type_shape(found))


async def update(request: Request) -> Response:
    """Change the description, or deprecate the type. The name and schemas do not change
    here: add a schema version with `POST /v1/event-types/{name}/schemas`."""
    owner = await tenant(request)
    body = await read_model(request, EventTypePatch)
    found = await update_event_type(
        services(request).pool,
        owner.id,
        request.path_params["name"],
        body.description,
        body.deprecated,
    )
    return JSON(event_type_shape(found))


async def add_version(request: Request) -> Response:
    """Register the type's next schema version (latest + 1). Events that name no version
    are checked against it from now on; events may still name an older one."""
    owner = await tenant(request)
    body = await read_model(request, SchemaVersionIn)
    added = await add_schema_version(
        services(request).pool,
        owner.id,
        request.path_params["name"],
        body.json_schema,
        body.example,
    )
    return JSON(schema_version_shape(added), status_code=201)


async def versions(request: Request) -> Response:
    """The type's schema versions, newest first."""
    owner = await tenant(request)
    query = read_query(request, SchemaVersionsQuery)
    rows = await list_schema_versions(
        services(request).pool, owner.id, request.path_params["name"], query.cursor, query.limit
    )
    cursor = str(rows[-1]["version"]) if len(rows) == query.limit else None
    return JSON({"data": [schema_version_shape(r) for r in rows], "next_cursor": cursor})


async def version(request: Request) -> Response:
    owner = await tenant(request)
    name, number = request.path_params["name"], request.path_params["version"]
    if not (number.isdigit() and len(number) <= 9):
        raise NotFound(f"no schema version {number!r} of event type {name!r}")
    found = await get_schema_version(services(request).pool, owner.id, name, int(number))
    return JSON(schema_version_shape(found))


TAG = "Event types"
routes = [
    operation(
        "POST",
        "/v1/event-types",
        create,
        summary="Create an event type",
        tag=TAG,
        body=EventTypeIn,
        response=EventTypeOut,
        status=201,
        errors=(400, 409, 422),
        idempotent=True,
    ),
    operation(
        "GET",
        "/v1/event-types",
        index,
        summary="List event types",
        tag=TAG,
        query=EventTypesQuery,
        response=Page[EventTypeOut],
        errors=(422,),
    ),
    operation(
        "GET",
        "/v1/event-types/{name}",
        read,
        summary="Get an event type",
        tag=TAG,
        response=EventTypeOut,
        errors=(404,),
    ),
    operation(
        "PATCH",
        "/v1/event-types/{name}",
        update,
        summary="Update or deprecate an event type",
        tag=TAG,
        body=EventTypePatch,
        response=EventTypeOut,
        errors=(400, 404, 422),
    ),
    operation(
        "POST",
        "/v1/event-types/{name}/schemas",
        add_version,
        summary="Add a schema version",
        tag=TAG,
        body=SchemaVersionIn,
        response=SchemaVersionOut,
        status=201,
        errors=(400, 404, 422),
        idempotent=True,
    ),
    operation(
        "GET",
        "/v1/event-types/{name}/schemas",
        versions,
        summary="List schema versions",
        tag=TAG,
        query=SchemaVersionsQuery,
        response=Page[SchemaVersionOut],
        errors=(404, 422),
    ),
    operation(
        "GET",
        "/v1/event-types/{name}/schemas/{version}",
        version,
        summary="Get a schema version",
        tag=TAG,
        response=SchemaVersionOut,
        errors=(404,),
    ),
]
