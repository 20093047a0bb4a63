"""What the API accepts: strict pydantic models with limits on every field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
Text = Annotated[str, Field(max_length=1000)]
Url = Annotated[str, Field(min_length=1, max_length=2048)]

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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class EventIn(_Strict):
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


class SubscriberIn(_Strict):
    uid: Name = Field(description="The tenant's own id for this customer.")
    name: Annotated[str, Field(max_length=200)] = ""


class EndpointIn(_Strict):
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
