"""What the endpoint routes take and return.

The field types, limits and defaults are the kernel's (:mod:`hookline.endpoint_fields`),
shared by :class:`EndpointIn` (register), :class:`EndpointPatch` (change some fields) and
the dashboard's form, so all refuse the same things.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field
from pydantic.config import JsonDict

from api.schemas import ListQuery, Name, Strict, Text
from hookline.endpoint_fields import (
    DEFAULT_FORMAT,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_ON_EXHAUSTED,
    DEFAULT_ORDERING,
    DEFAULT_PAYLOAD,
    DEFAULT_SIGNATURE,
    DisableAfter,
    EventTypes,
    Format,
    FormatKind,
    Headers,
    MaxInFlight,
    OnExhausted,
    OnExhaustedKind,
    Ordering,
    OrderingKind,
    Payload,
    PayloadKind,
    RateLimit,
    RetrySchedule,
    SchemaVersion,
    SensitiveHeaders,
    Signature,
    TargetUrl,
    Timeout,
)
from hookline.fields import Declared
from hookline.secrets import SECRET_PATTERN, SignatureKind, check_signing_secret
from hookline.vault import REDACTED


class EndpointIn(Strict):
    subscriber: Name = Field(description="uid of the subscriber that owns the endpoint.")
    url: TargetUrl
    description: Text = ""
    event_types: EventTypes | None = None
    ordering: Ordering = DEFAULT_ORDERING
    on_exhausted: OnExhausted = DEFAULT_ON_EXHAUSTED
    payload: Payload = DEFAULT_PAYLOAD
    format: Format = DEFAULT_FORMAT
    timeout: Timeout | None = None
    rate_limit: RateLimit | None = None
    max_in_flight: MaxInFlight = DEFAULT_MAX_IN_FLIGHT
    headers: Headers = Field(default_factory=dict)
    sensitive_headers: SensitiveHeaders = Field(default_factory=list)
    schema_version: SchemaVersion | None = None
    retry_schedule: RetrySchedule | None = None
    signature: Signature = DEFAULT_SIGNATURE
    disable_after: DisableAfter | None = None


def _no_default(schema: JsonDict) -> None:
    schema.pop("default", None)


def unset(description: str | None = None) -> Any:
    """The default of a PATCH field that may be left out but not set to null.

    The field keeps its own type, so an explicit null is refused like any wrong value and
    the OpenAPI document shows no null; left out, it reads None (not validated), which is
    why handlers read PATCH bodies only through ``model_dump(exclude_unset=True)``.
    """
    return Field(default=None, description=description, json_schema_extra=_no_default)


class EndpointPatch(Strict):
    """The fields to change; those left out stay as they are. `null` resets the nullable
    ones (`event_types`: all types; `timeout`: the global default; `rate_limit`: none;
    `schema_version`: any; `retry_schedule`: the installation's; `disable_after`: the
    tenant's). `headers` replaces all custom headers. `status` pauses or resumes; resuming
    sends what waited, in order, and resuming a disabled endpoint answers with a
    `replay_offer` for what it missed."""

    url: TargetUrl = unset()
    description: Text = unset()
    event_types: EventTypes | None = None
    ordering: Ordering = unset()
    on_exhausted: OnExhausted = unset()
    payload: Payload = unset()
    format: Format = unset()
    timeout: Timeout | None = None
    rate_limit: RateLimit | None = None
    max_in_flight: MaxInFlight = unset()
    headers: Headers = unset()
    sensitive_headers: SensitiveHeaders = unset()
    schema_version: SchemaVersion | None = None
    retry_schedule: RetrySchedule | None = None
    disable_after: DisableAfter | None = None
    status: Literal["active", "paused"] = unset()


class EndpointHealth(BaseModel):
    """How the endpoint has been answering lately (read-only)."""

    consecutive_failures: int = Field(description="Failed attempts since the last success.")
    failing_since: datetime | None = Field(
        description="When the first failure of the current run was sent; null: healthy."
    )
    disabled_at: datetime | None = Field(
        description="When hookline last disabled it; after a re-enable, kept until the "
        "first success."
    )
    warning: int = Field(
        description="The highest warning sent for the current run, in percent of the "
        "disable period: 0 (none), 50 or 90; 100 once disabled for it."
    )


class ReplayOffer(BaseModel):
    """What a re-enabled endpoint missed while it was disabled, and where to get it."""

    since: datetime = Field(description="When it was disabled (else began failing).")
    until: datetime = Field(description="When it was re-enabled: newer events reach it.")
    replay: str = Field(
        description='POST `{"since", "until", "missed": true}` here (`"dry_run": true` '
        "first, to count) to send what failed in that window and what it never got."
    )


class EndpointOut(BaseModel):
    id: str
    subscriber: str
    url: str
    description: str
    event_types: list[str] | None
    ordering: OrderingKind
    on_exhausted: OnExhaustedKind
    payload: PayloadKind
    format: FormatKind
    timeout: float | None
    rate_limit: int | None
    max_in_flight: int
    headers: dict[str, str] = Field(description=f"Credential values shown as `{REDACTED}`.")
    sensitive_headers: list[str]
    schema_version: int | None
    retry_schedule: list[float] | None
    disable_after: float | None
    status: Literal["active", "paused", "disabled"]
    status_reason: str = Field(description="Why hookline paused or disabled it, if it did.")
    signature: Signature
    health: EndpointHealth
    replay_offer: ReplayOffer | None = Field(
        default=None,
        description="Only in the answer to a PATCH that re-enabled a disabled endpoint.",
    )
    created_at: datetime
    updated_at: datetime


class EndpointsQuery(ListQuery):
    subscriber: Annotated[str, Field(max_length=200)] | None = None


class PublicKeyOut(BaseModel):
    key: str = Field(description="`whpk_` and base64 of the raw 32-byte ed25519 public key.")
    expires_at: datetime | None = Field(
        description="When it stops signing (a rotation's grace period ends); null: current."
    )


class SecretOut(BaseModel):
    key: str = Field(
        description="What the subscriber verifies with: the current signing secret "
        "`whsec_...` (`hmac`), or the current public key `whpk_...` (`ed25519`). An ed25519 "
        "private key is never shown."
    )
    signature: Signature
    public_keys: list[PublicKeyOut] = Field(
        description="Every ed25519 public key still signing, newest first: during a "
        "rotation's grace period the replaced key signs beside the new one. Trust them all."
    )


class SecretRotateIn(Strict):
    key: (
        Annotated[
            str,
            # declared, and checked by check_signing_secret with a message for each way
            Field(max_length=100),
            Declared(SECRET_PATTERN),
            AfterValidator(check_signing_secret),
        ]
        | None
    ) = Field(
        default=None,
        description="The new HMAC secret, `whsec_` and base64 of 24 to 64 bytes; absent: a "
        "new random secret or keypair. ed25519 keypairs are always made by hookline.",
    )
    signature: SignatureKind | None = Field(
        default=None,
        description="Switch how deliveries are signed (`hmac` or `ed25519`); absent: as the "
        "current secret does. Old and new sign side by side for the grace period.",
    )


class ExampleEventIn(Strict):
    type: Name = Field(description="Event type of the example, e.g. `order.created`.")
    data: dict[str, Any] | None = Field(
        default=None,
        description="The event's data; absent: the example of the type's schema (the "
        "version the endpoint pins, or the latest), else `{}`.",
    )


class ExampleEventSent(BaseModel):
    event_id: str
    delivery_id: str
