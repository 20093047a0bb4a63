"""Subscribers: the tenant's customers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant
from api.http import JSON, page, read_model, read_query, services
from api.openapi import operation
from api.schemas import ListQuery, Name, Page, Strict
from hookline.db import Row
from hookline.subscribers import create_subscriber, get_subscriber, list_subscribers


class SubscriberIn(Strict):
    uid: Name = Field(description="The tenant's own id for this customer.")
    name: Annotated[str, Field(max_length=200)] = ""


class SubscriberOut(BaseModel):
    id: str
    uid: str
    name: str
    created_at: datetime


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
    query = read_query(request, ListQuery)
    rows = await list_subscribers(services(request).pool, owner.id, query.cursor, query.limit)
    return page(rows, query.limit, subscriber_shape)


async def read(request: Request) -> Response:
    owner = await tenant(request)
    found = await get_subscriber(services(request).pool, owner.id, request.path_params["uid"])
    return JSON(subscriber_shape(found))


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
]
