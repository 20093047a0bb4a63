"""Events: ingest one or a batch, read them back, cancel, and the thin payload's content."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant
from api.http import JSON, page, read_model, read_query
from api.openapi import operation
from api.schemas import IsoDatetime, ListQuery, Moment, Name, Page, Strict, Url
from hookline import events as kernel
from hookline.db import Row
from hookline.errors import Path
from hookline.event_types import check_events
from hookline.links import verify_event_link
from hookline.services import services

BATCH_BODY = 16 * 1024 * 1024  # bytes: a batch of 1000 events may carry more than one


class EventIn(Strict):
    """One event from a producer."""

    id: Name | None = Field(default=None, description="Producer's id, unique per tenant.")
    type: Name = Field(description="Event type, e.g. `order.created`.")
    data: dict[str, Any] = Field(description="The event's content: a JSON object.")
    version: kernel.VersionRef | None = Field(
        default=None, description="Schema version of the type; absent: the latest."
    )
    subject: kernel.Subject | None = Field(
        default=None, description="The entity the event is about, e.g. `order_12345`."
    )
    url: Url | None = Field(default=None, description="The producer's URL for the subject.")
    ordering_key: kernel.OrderingKey | None = Field(
        default=None, description="Lane of `keyed` endpoints; defaults to `subject`."
    )
    subscriber: Name | None = Field(
        default=None, description="Only this subscriber's endpoints; absent: all."
    )
    expires_at: Moment | None = Field(
        default=None, description="Deliveries not done by then are cancelled, never sent late."
    )


class BatchIn(Strict):
    events: Annotated[list[EventIn], Field(min_length=1, max_length=kernel.MAX_BATCH)]


class EventAccepted(BaseModel):
    id: str
    type: str
    timestamp: datetime
    deliveries: int = Field(description="How many endpoints the event was fanned out to.")


class BatchAccepted(BaseModel):
    data: list[EventAccepted]


class Fetch(BaseModel):
    fetched_at: datetime
    endpoint_id: str | None
    address: str


class EventOut(BaseModel):
    id: str
    type: str
    timestamp: datetime
    data: dict[str, Any]
    version: int | None = None
    subject: str | None = None
    url: str | None = None
    ordering_key: str | None = None
    subscriber: str | None = None
    producer_id: str | None = None
    expires_at: datetime | None = None
    cancelled_at: datetime | None = None
    delivery_summary: dict[str, int] | None = Field(
        default=None, description="Deliveries by status (on a single event)."
    )
    fetches: list[Fetch] | None = Field(
        default=None, description="Latest fetches of its thin payload link (single event)."
    )


class EventsQuery(ListQuery):
    type: Name | None = None
    subscriber: Name | None = None
    after: IsoDatetime | None = Field(default=None, description="Created at or after.")
    before: IsoDatetime | None = Field(default=None, description="Created before.")


class CancelOut(BaseModel):
    id: str
    cancelled: int = Field(description="Deliveries cancelled by this call.")


class ContentQuery(Strict):
    endpoint: Annotated[str, Field(max_length=200)]
    expires: Annotated[str, Field(max_length=20)]
    sig: Annotated[str, Field(max_length=100)]


_OPTIONAL = (
    "subject",
    "url",
    "ordering_key",
    "subscriber",
    "producer_id",
    "expires_at",
    "cancelled_at",
)


def event_shape(row: Row) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "id": row["id"],
        "type": row["type"],
        "timestamp": row["created_at"],
        "data": orjson.Fragment(row["data"]),
        "version": row.get("schema_version"),
    }
    for field in _OPTIONAL:
        if row.get(field) is not None:
            shaped[field] = row[field]
    if "delivery_summary" in row:
        shaped["delivery_summary"] = row["delivery_summary"]
        shaped["fetches"] = row["fetches"]
    return shaped


async def _checked(
    request: Request, tenant_id: str, events: list[EventIn], locs: list[Path]
) -> list[dict[str, Any]]:
    """The events as kernel dicts, each stamped with its checked schema version."""
    items = [(e.type, e.version, e.data) for e in events]
    versions = await check_events(services(request).pool, tenant_id, items, locs)
    return [e.model_dump() | {"version": v} for e, v in zip(events, versions, strict=True)]


async def create_event(request: Request) -> Response:
    """Commit the event and its deliveries, then ring the workers' doorbell.

    A 202 means the event and every delivery are committed: nothing is acknowledged
    before it is durable. Concurrent requests share one statement and one commit (group
    commit), each judged alone.
    """
    owner = await tenant(request)
    event = await read_model(request, EventIn)
    svc = services(request)
    await svc.rates.admit(owner.id, 1)
    checked = await _checked(request, owner.id, [event], [()])
    accepted = await svc.ingest.ingest(owner.id, checked[0])  # rings the doorbell
    svc.rates.charge(owner.id, accepted.deliveries)
    svc.metrics.ingested.labels("single").inc()
    return JSON(_accepted(accepted, event.type), status_code=202)


async def create_batch(request: Request) -> Response:
    """Commit up to 1000 events in one transaction: all are accepted or none.

    A rejected batch lists every failing item by index and path.
    """
    owner = await tenant(request)
    batch = await read_model(request, BatchIn, limit=BATCH_BODY)
    svc = services(request)
    await svc.rates.admit(owner.id, len(batch.events))
    locs: list[Path] = [("events", i) for i in range(len(batch.events))]
    checked = await _checked(request, owner.id, batch.events, locs)
    accepted = await kernel.ingest_events(
        svc.pool, owner.id, checked, locs=locs, max_fanout=svc.settings.tenant_max_fanout
    )
    svc.doorbell.ring()
    svc.rates.charge(owner.id, sum(a.deliveries for a in accepted))
    svc.metrics.ingested.labels("batch").inc(len(accepted))
    return JSON(
        {"data": [_accepted(a, e.type) for a, e in zip(accepted, batch.events, strict=True)]},
        status_code=202,
    )


def _accepted(accepted: kernel.Accepted, type_: str) -> dict[str, Any]:
    return {
        "id": accepted.id,
        "type": type_,
        "timestamp": accepted.created_at,
        "deliveries": accepted.deliveries,
    }


async def index(request: Request) -> Response:
    owner = await tenant(request)
    query = read_query(request, EventsQuery)
    rows = await kernel.list_events(
        services(request).pool,
        owner.id,
        type_=query.type,
        subscriber=query.subscriber,
        after=query.after,
        before=query.before,
        cursor=query.cursor,
        limit=query.limit,
    )
    return page(rows, query.limit, event_shape)


async def read_event(request: Request) -> Response:
    """The event with its deliveries counted by status and its link's latest fetches."""
    owner = await tenant(request)
    found = await kernel.event_detail(services(request).pool, owner.id, request.path_params["id"])
    return JSON(event_shape(found))


async def cancel(request: Request) -> Response:
    """Cancel the event's unfinished deliveries: they are never sent.

    For the stale-state case, e.g. an order cancelled before its `order.created` went
    out. An attempt already in flight cannot be recalled.
    """
    owner = await tenant(request)
    event_id = request.path_params["id"]
    cancelled = await kernel.cancel_event(services(request).pool, owner.id, event_id)
    return JSON({"id": event_id, "cancelled": cancelled})


async def event_content(request: Request) -> Response:
    """The full event behind a thin payload's signed, expiring `links.event` URL.

    Needs no API key: the link's signature is the authority. Each fetch is recorded. A
    link stops working once its endpoint is deleted, or once the signing secret it was
    sent under stops signing (rotate the secret to revoke a leaked link).
    """
    svc = services(request)
    event_id = request.path_params["id"]
    query = read_query(request, ContentQuery)
    signing = await kernel.link_secrets(svc.pool, svc.vault, event_id, query.endpoint)
    keys = [svc.settings.secret_key or "", *svc.settings.previous_secret_keys]
    if not signing or not verify_event_link(
        keys, event_id, query.endpoint, query.expires, query.sig, signing
    ):
        raise HTTPException(404, "this link is not valid or has expired")
    address = request.client.host if request.client else "unknown"
    found = await kernel.event_content(svc.pool, event_id, query.endpoint, address)
    return JSON(event_shape(found))


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
        errors=(400, 409, 422, 429),
        idempotent=True,
    ),
    operation(
        "POST",
        "/v1/events/batch",
        create_batch,
        summary="Send up to 1000 events",
        tag=TAG,
        body=BatchIn,
        response=BatchAccepted,
        status=202,
        errors=(400, 409, 422, 429),
        idempotent=True,
    ),
    operation(
        "GET",
        "/v1/events",
        index,
        summary="List events",
        tag=TAG,
        query=EventsQuery,
        response=Page[EventOut],
        errors=(422,),
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
        "POST",
        "/v1/events/{id}/cancel",
        cancel,
        summary="Cancel an event",
        tag=TAG,
        response=CancelOut,
        errors=(404,),
    ),
    operation(
        "GET",
        "/v1/events/{id}/content",
        event_content,
        tag=TAG,
        auth=False,
        summary="Fetch an event through a thin payload's signed link",
        query=ContentQuery,
        response=EventOut,
        errors=(404, 422),
    ),
]
