"""What the API accepts: strict pydantic models with limits on every field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from hookline.deliveries import DeliveryStatus, StatusClass
from hookline.fields import Name, Text, Url
from hookline.moments import Moment

__all__ = ["Moment", "Name", "Text", "Url"]  # the kernel's, re-exported for the API's models


def _iso_only(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "").isdigit():
        raise ValueError("an ISO 8601 date-time with a zone, e.g. 2026-01-01T00:00:00Z")
    return value


#: A date-time with a zone in a query string, ISO 8601 only: a bare number is not read as
#: Unix seconds. (Bodies are validated strictly as JSON, which already wants a string.)
IsoDatetime = Annotated[Moment, BeforeValidator(_iso_only)]


class Strict(BaseModel):
    """Input models refuse unknown fields: a typo is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a list, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    data: list[T]
    next_cursor: str | None


class ListQuery(Strict):
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    cursor: Annotated[str, Field(max_length=200)] | None = None


class DeliveriesQuery(ListQuery):
    endpoint: Annotated[str, Field(max_length=200)] | None = None
    event: Annotated[str, Field(max_length=200)] | None = None
    status: DeliveryStatus | None = None
    after: IsoDatetime | None = Field(default=None, description="Created at or after.")
    before: IsoDatetime | None = Field(default=None, description="Created before.")
    http_status: StatusClass | None = Field(
        default=None, description="Class of the last answer; `none`: no answer at all."
    )


class AttemptOut(BaseModel):
    n: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    request_headers: dict[str, str]
    response_headers: dict[str, str]
    response_body: str
    next_attempt_at: datetime | None


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    endpoint_id: str
    event_type: str
    seq: int
    status: Literal["pending", "retrying", "succeeded", "failed", "cancelled"]
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    attempt_history: list[AttemptOut] | None = None


class Health(BaseModel):
    status: str
    checks: dict[str, str] | None = None
