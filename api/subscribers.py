"""Subscribers: the tenant's customers, and magic links into their portal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant
from api.endpoint_models import unset
from api.http import JSON, page, read_model, read_query
from api.openapi import operation
from api.schemas import ListQuery, Name, Page, Strict
from hookline import subscribers as kernel
from hookline.db import Row
from hookline.portal import create_portal_link
from hookline.services import services


class SubscriberIn(Strict):
    uid: Name = Field(description="The tenant's own id for this customer.")
    name: kernel.SubscriberName = ""


class SubscriberPatch(Strict):
    """The fields to change; those left out stay as they are."""

    uid: Name = unset("A new uid; it must not be taken.")
    name: kernel.SubscriberName = unset()


class SubscriberOut(BaseModel):
    id: str
    uid: str
    name: str
    created_at: datetime


class PortalLinkOut(BaseModel):
    url: str = Field(description="Opens the subscriber's portal once; pass it on as is.")
    expires_at: datetime


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
    svc = services(request)
    created = await kernel.create_subscriber(
        svc.pool, owner.id, body.uid, body.name, quota=svc.settings.tenant_max_subscribers
    )
    return JSON(subscriber_shape(created), status_code=201)


async def index(request: Request) -> Response:
    owner = await tenant(request)
    query = read_query(request, ListQuery)
    rows = await kernel.list_subscribers(
        services(request).pool, owner.id, query.cursor, query.limit
    )
    return page(rows, query.limit, subscriber_shape)


async def read(request: Request) -> Response:
    owner = await tenant(request)
    found = await kernel.get_subscriber(
        services(request).pool, owner.id, request.path_params["uid"]
    )
    return JSON(subscriber_shape(found))


async def update(request: Request) -> Response:
    """Rename a subscriber or change its uid; events and endpoints follow."""
    owner = await tenant(request)
    body = await read_model(request, SubscriberPatch)
    updated = await kernel.update_subscriber(
        services(request).pool,
        owner.id,
        request.path_params["uid"],
        body.model_dump(exclude_unset=True),
    )
    return JSON(subscriber_shape(updated))


async def delete(request: Request) -> Response:
    """Delete a subscriber with its endpoints and their deliveries; its events stay.

    None of its pending deliveries is sent after this answers: it waits for requests in
    flight to its endpoints to end.
    """
    owner = await tenant(request)
    await kernel.delete_subscriber(services(request).pool, owner.id, request.path_params["uid"])
    return Response(status_code=204)


async def portal_link(request: Request) -> Response:
    """A magic link into the subscriber portal: it starts one session, as this subscriber
    only, until `expires_at` (`HOOKLINE_PORTAL_LINK_TTL`, 15 minutes by default)."""
    owner = await tenant(request)
    svc = services(request)
    link = await create_portal_link(
        svc.pool,
        owner.id,
        request.path_params["uid"],
        public_url=svc.settings.public_url,
        ttl=svc.settings.portal_link_ttl,
    )
    return JSON({"url": link.url, "expires_at": link.expires_at}, status_code=201)


TAG = "Subscribers"
routes = [
    operation(
        "POST",
        "/v1/subscribers",
        create,
        summary="Create a subscriber",
        tag=TAG,
        body=SubscriberIn,
        response=SubscriberOut,
        status=201,
        errors=(400, 409, 422),
        idempotent=True,
    ),
    operation(
        "GET",
        "/v1/subscribers",
        index,
        summary="List subscribers",
        tag=TAG,
        query=ListQuery,
        response=Page[SubscriberOut],
        errors=(422,),
    ),
    operation(
        "GET",
        "/v1/subscribers/{uid}",
        read,
        summary="Get a subscriber",
        tag=TAG,
        response=SubscriberOut,
        errors=(404,),
    ),
    operation(
        "PATCH",
        "/v1/subscribers/{uid}",
        update,
        summary="Change a subscriber",
        tag=TAG,
        body=SubscriberPatch,
        response=SubscriberOut,
        errors=(400, 404, 409, 422),
    ),
    operation(
        "DELETE",
        "/v1/subscribers/{uid}",
        delete,
        summary="Delete a subscriber and its endpoints",
        tag=TAG,
        status=204,
        errors=(404, 409),
    ),
    operation(
        "POST",
        "/v1/subscribers/{uid}/portal-link",
        portal_link,
        summary="Make a magic link into the subscriber portal",
        tag=TAG,
        response=PortalLinkOut,
        status=201,
        errors=(404,),
    ),
]
