"""The event-type catalog: every type with its description, and one type's schema
versions with their JSON Schema and example payload.

Read-only, and the same for both audiences: the catalog is the tenant's, and its
subscribers read it to know what they can listen to (types are changed through the API).
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from dashboard.events import pretty_json
from dashboard.web import render, viewer
from hookline.errors import NotFound
from hookline.event_types import get_event_type, list_event_types, list_schema_versions
from hookline.services import services

PAGE = 100
VERSIONS_SHOWN = 50


async def index(request: Request) -> Response:
    session = await viewer(request)
    cursor = request.query_params.get("cursor", "").strip()[:200]
    rows = await list_event_types(
        services(request).pool, session.tenant_id, cursor or None, PAGE + 1
    )
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return await render(
        request,
        "events/types.html",
        session,
        title="Event types",
        rows=rows,
        next_url=f"/event-types?{urlencode({'cursor': rows[-1]['name']})}" if more else "",
    )


async def detail(request: Request) -> Response:
    session = await viewer(request)
    pool = services(request).pool
    name = request.path_params["name"]
    try:
        event_type = await get_event_type(pool, session.tenant_id, name)
        versions = await list_schema_versions(pool, session.tenant_id, name, None, VERSIONS_SHOWN)
    except NotFound:
        raise HTTPException(
            404, "There is no event type with this name in the catalog. See the list of types."
        ) from None
    return await render(
        request,
        "events/type.html",
        session,
        title=f"Event type {name}",
        event_type=event_type,
        versions=[
            {**v, "schema": pretty_json(v["schema"]), "example": pretty_json(v["example"])}
            for v in versions
        ],
    )


routes: list[BaseRoute] = [
    Route("/event-types", index, methods=["GET"]),
    Route("/event-types/{name}", detail, methods=["GET"]),
]
