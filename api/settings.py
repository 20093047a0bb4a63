"""The tenant's own settings: how hookline treats its events."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant
from api.http import JSON, read_model, services
from api.openapi import operation
from api.schemas import Strict
from hookline.db import Row
from hookline.event_types import tenant_settings, update_tenant_settings

_UNKNOWN = (
    "What ingest does with an event whose type is not in the catalog (`/v1/event-types`): "
    "`accept` it unchecked, or `refuse` it with a 422."
)


class SettingsOut(BaseModel):
    unknown_event_types: Literal["accept", "refuse"] = Field(description=_UNKNOWN)


class SettingsPatch(Strict):
    unknown_event_types: Literal["accept", "refuse"] | None = Field(
        default=None, description=_UNKNOWN + " Absent or null: unchanged."
    )


def settings_shape(row: Row) -> dict[str, str]:
    return {"unknown_event_types": row["unknown_event_types"]}


async def read(request: Request) -> Response:
    owner = await tenant(request)
    return JSON(settings_shape(await tenant_settings(services(request).pool, owner.id)))


async def update(request: Request) -> Response:
    owner = await tenant(request)
    body = await read_model(request, SettingsPatch)
    changed = await update_tenant_settings(
        services(request).pool, owner.id, body.unknown_event_types
    )
    return JSON(settings_shape(changed))


TAG = "Settings"
routes = [
    operation(
        "GET",
        "/v1/settings",
        read,
        summary="Get the tenant's settings",
        tag=TAG,
        response=SettingsOut,
        errors=(),
    ),
    operation(
        "PATCH",
        "/v1/settings",
        update,
        summary="Change the tenant's settings",
        tag=TAG,
        body=SettingsPatch,
        response=SettingsOut,
        errors=(400, 422),
    ),
]
