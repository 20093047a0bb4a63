"""The tenant's own settings: how hookline treats its events and delivers them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant
from api.endpoint_models import unset
from api.http import JSON, read_model
from api.openapi import operation
from api.schemas import Name, Strict
from hookline.db import Row
from hookline.endpoint_fields import DisableAfter, RetrySchedule, Timeout
from hookline.retention import Retention
from hookline.services import services
from hookline.tenants import tenant_settings, update_tenant_settings

_UNKNOWN = (
    "What ingest does with an event whose type is not in the catalog (`/v1/event-types`): "
    "`accept` it unchecked, or `refuse` it with a 422."
)
_SCHEDULE = "Retry schedule of every endpoint that has none of its own; null: the installation's."
_TIMEOUT = "Attempt deadline of every endpoint that has none of its own; null: the default."
_DISABLE = (
    "Seconds an endpoint that has none of its own may fail without a success before it is "
    "disabled; null: the installation's (HOOKLINE_ENDPOINT_DISABLE_AFTER, 5 days)."
)
_OPERATIONAL = (
    "Id of one of the tenant's endpoints that receives the operational events "
    "(`endpoint.failing`, `endpoint.disabled`, `endpoint.recovered`, `delivery.failed`), "
    "signed like any delivery; null: none are sent."
)


class SettingsOut(BaseModel):
    unknown_event_types: Literal["accept", "refuse"] = Field(description=_UNKNOWN)
    retry_schedule: list[float] | None = Field(description=_SCHEDULE)
    delivery_timeout: float | None = Field(description=_TIMEOUT)
    disable_after: float | None = Field(description=_DISABLE)
    operational_endpoint: str | None = Field(description=_OPERATIONAL)
    retention: Retention | None


class SettingsPatch(Strict):
    """The settings to change; those left out stay as they are."""

    unknown_event_types: Literal["accept", "refuse"] = unset(_UNKNOWN)
    retry_schedule: RetrySchedule | None = Field(default=None, description=_SCHEDULE)
    delivery_timeout: Timeout | None = Field(default=None, description=_TIMEOUT)
    disable_after: DisableAfter | None = Field(default=None, description=_DISABLE)
    operational_endpoint: Name | None = Field(default=None, description=_OPERATIONAL)
    retention: Retention | None = None


def settings_shape(row: Row) -> dict[str, Any]:
    return {
        "unknown_event_types": row["unknown_event_types"],
        "retry_schedule": row["retry_schedule"],
        "delivery_timeout": row["delivery_timeout"],
        "disable_after": row["disable_after"],
        "operational_endpoint": row["operational_endpoint"],
        "retention": row["retention"],
    }


async def read(request: Request) -> Response:
    owner = await tenant(request)
    return JSON(settings_shape(await tenant_settings(services(request).pool, owner.id)))


async def update(request: Request) -> Response:
    """Change the settings sent; `null` resets `retry_schedule`, `delivery_timeout`,
    `disable_after` and `retention` to the installation's, and `operational_endpoint` to
    none."""
    owner = await tenant(request)
    changes = (await read_model(request, SettingsPatch)).model_dump(exclude_unset=True)
    changed = await update_tenant_settings(services(request).pool, owner.id, changes)
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
