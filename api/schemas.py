"""What the API accepts: strict pydantic models with limits on every field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
Text = Annotated[str, Field(max_length=1000)]
Url = Annotated[str, Field(min_length=1, max_length=2048)]


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


class EventIn(Strict):
    """One event from a producer."""

    id: Name | None = Field(default=None, description="Producer's id, unique per tenant.")
    type: Name = Field(description="Event type, e.g. `order.created`.")
    data: dict[str, Any] = Field(description="The event's content: a JSON object.")
    subject: Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="The entity the event is about, e.g. `order_12345`."
    )
    url: Url | None = Field(default=None, description="The producer's URL for the subject.")
    ordering_key: Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="Lane of `keyed` endpoints; defaults to `subject`."
    )
    subscriber: Name | None = Field(
        default=None, description="Only this subscriber's endpoints; absent: all."
    )


class EventAccepted(BaseModel):
    id: str
    type: str
    timestamp: datetime
    deliveries: int = Field(description="How many endpoints the event was fanned out to.")


class EventOut(BaseModel):
    id: str
    type: str
    timestamp: datetime
    data: dict[str, Any]
    subject: str | None = None
    url: str | None = None
    ordering_key: str | None = None
    subscriber: str | None = None
    producer_id: str | None = None


class DeliveriesQuery(ListQuery):
    endpoint: Annotated[str, Field(max_length=200)] | None = None
    event: Annotated[str, Field(max_length=200)] | None = None
    status: Literal["pending", "retrying", "succeeded", "failed", "cancelled"] | None = None


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


class EventContentQuery(Strict):
    expires: Annotated[str, Field(max_length=20)]
    sig: Annotated[str, Field(max_length=100)]
