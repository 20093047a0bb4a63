"""What an endpoint's settings may be: types, limits, defaults and choices, said once.

``api/endpoint_models.py`` builds the API's models (and so the OpenAPI document) from these
types; ``dashboard/endpoint_form.py`` checks a posted form with the same types and quotes
the same limits in its messages; the kernel stores what they let through. Each choice has
a line that says what it does, shown beside it in the form.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, Field

from hookline.fields import URL_MAX, WHOLE, Declared, Name
from hookline.secrets import SignatureKind
from hookline.vault import CREDENTIAL_WORDS, REDACTED

# -- limits (quoted by the form's messages) --------------------------------------------------

EVENT_TYPES_MAX = 500
TIMEOUT_RANGE = (0.01, 30)  # at least 10 ms: less rounds to 0 in the database's column
RATE_LIMIT_RANGE = (1, 100_000)
MAX_IN_FLIGHT_RANGE = (1, 1000)
SCHEMA_VERSION_RANGE = (1, 1_000_000)
HEADERS_MAX = 20
HEADER_NAME_MAX = 100
HEADER_VALUE_MAX = 1000
RETRY_SCHEDULE_MAX = 50
RETRY_DELAY_MAX = 7 * 86400
DISABLE_AFTER_RANGE = (1, 90 * 86400)

# -- choices -----------------------------------------------------------------------------

OrderingKind = Literal["strict", "keyed", "none"]
OnExhaustedKind = Literal["dead_letter", "pause"]
PayloadKind = Literal["thin", "full"]
FormatKind = Literal["standard", "cloudevents"]

ORDERINGS: dict[OrderingKind, str] = {
    "strict": "one at a time, in the order events were accepted; the next waits until the "
    "one before succeeds or is dead-lettered",
    "keyed": "in order per ordering key (the event's subject unless the producer sets "
    "one); different keys go in parallel",
    "none": "no order: deliveries go out in parallel, up to the in-flight limit",
}
ON_EXHAUSTED: dict[OnExhaustedKind, str] = {
    "dead_letter": "Dead-letter it and go on with the next",
    "pause": "Pause the endpoint until someone resumes it",
}
PAYLOADS: dict[PayloadKind, str] = {
    "thin": "Thin: id, type, subject and a signed link to fetch the whole event",
    "full": "Full: the event's data in the body",
}
FORMATS: dict[FormatKind, str] = {
    "standard": "Standard Webhooks JSON",
    "cloudevents": "CloudEvents 1.0 (structured mode)",
}
SIGNATURES: dict[SignatureKind, str] = {
    "hmac": "HMAC-SHA256 with a shared whsec_ secret",
    "ed25519": "Ed25519: verify with a whpk_ public key; the private key never leaves hookline",
}
#: Every choice field: its type, and a line for each option.
CHOICES: dict[str, tuple[object, dict[str, str]]] = {
    name: (kind, {str(k): v for k, v in labels.items()})
    for name, kind, labels in (
        ("ordering", OrderingKind, ORDERINGS),
        ("on_exhausted", OnExhaustedKind, ON_EXHAUSTED),
        ("payload", PayloadKind, PAYLOADS),
        ("format", FormatKind, FORMATS),
        ("signature", SignatureKind, SIGNATURES),
    )
}

# What a new endpoint gets for a setting it does not name (None: no value, or the
# tenant's or installation's policy)
DEFAULT_ORDERING: OrderingKind = "strict"
DEFAULT_ON_EXHAUSTED: OnExhaustedKind = "dead_letter"
DEFAULT_PAYLOAD: PayloadKind = "thin"
DEFAULT_FORMAT: FormatKind = "standard"
DEFAULT_MAX_IN_FLIGHT = 10
DEFAULT_SIGNATURE: SignatureKind = "hmac"
DEFAULTS: dict[str, object] = {
    "description": "",
    "event_types": None,
    "ordering": DEFAULT_ORDERING,
    "on_exhausted": DEFAULT_ON_EXHAUSTED,
    "payload": DEFAULT_PAYLOAD,
    "format": DEFAULT_FORMAT,
    "timeout": None,
    "rate_limit": None,
    "max_in_flight": DEFAULT_MAX_IN_FLIGHT,
    "headers": {},
    "sensitive_headers": [],
    "schema_version": None,
    "retry_schedule": None,
    "signature": DEFAULT_SIGNATURE,
    "disable_after": None,
}

# -- headers -----------------------------------------------------------------------------

#: Headers hookline sets itself; an endpoint's custom headers may not replace them.
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


def _no_reserved(value: dict[str, str]) -> dict[str, str]:
    clash = sorted(k for k in value if k.lower() in RESERVED_HEADERS)
    if clash:
        raise ValueError(f"hookline sets these headers itself: {', '.join(clash)}")
    lowered = [k.lower() for k in value]
    twice = sorted({k for k in value if lowered.count(k.lower()) > 1})
    if twice:
        raise ValueError(f"header names are not case-sensitive: {', '.join(twice)} repeat")
    return value


_WORDS = ", ".join(f"`{w}`" for w in CREDENTIAL_WORDS)
HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
HeaderName = Annotated[str, Field(max_length=HEADER_NAME_MAX, pattern=HEADER_NAME)]
# what HTTP/1.1 can carry as a field value and every receiver reads the same way: visible
# ASCII, spaces and tabs (RFC 9110 5.5, without obsolete non-ASCII text); anything else
# would be accepted here and then fail every delivery
HeaderValue = Annotated[
    str,
    Field(
        max_length=HEADER_VALUE_MAX,
        pattern=r"^[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?$|^$",
        description="Visible ASCII, with spaces or tabs between.",
    ),
]
Headers = Annotated[
    dict[HeaderName, HeaderValue],
    Field(
        max_length=HEADERS_MAX,
        description="Custom request headers (not hookline's own). Values of credential "
        f"headers (a name with {_WORDS} in it, or one listed in `sensitive_headers`) are "
        f"stored encrypted and shown as `{REDACTED}`; sending `{REDACTED}` back keeps the "
        "stored value.",
    ),
    AfterValidator(_no_reserved),
]
SensitiveHeaders = Annotated[
    list[HeaderName],
    Field(
        max_length=HEADERS_MAX,
        description="Further custom headers whose values are credentials: stored encrypted, "
        "never shown, redacted in attempt history.",
    ),
]

# -- the other settings ------------------------------------------------------------------

#: Where deliveries go: an http(s) URL with a host and no credentials in it. The API
#: document declares that shape; the SSRF policy (hookline/targets.py) checks it, with a
#: message for each way a URL can be wrong, and whether its host may be sent to.
TargetUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=URL_MAX,
        description="The receiver's http(s) URL; the address it resolves to must be public "
        "(or in HOOKLINE_ALLOWED_TARGET_NETWORKS).",
    ),
    Declared(r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s@/?#]+(?:[/?#][^\s]*)?$"),
]


def _between(bounds: tuple[float, float], description: str) -> Any:
    """A number's field from ``bounds[0]`` to ``bounds[1]``, both included."""
    return Field(ge=bounds[0], le=bounds[1], description=description)


EventTypes = Annotated[
    list[Name],
    Field(min_length=1, max_length=EVENT_TYPES_MAX, description="Types to receive; null: all."),
]
Ordering = Annotated[
    OrderingKind,
    Field(
        description="One at a time in order (`strict`), per ordering key (`keyed`), or in "
        "parallel (`none`). A change applies to events ingested from then on."
    ),
]
OnExhausted = Annotated[
    OnExhaustedKind,
    Field(description="When a head exhausts its retries: dead-letter it and go on, or pause."),
]
Payload = Annotated[PayloadKind, Field(description="Thin notification or full data.")]
Format = Annotated[FormatKind, Field(description="Body format.")]
Timeout = Annotated[
    float, _between(TIMEOUT_RANGE, "Seconds per attempt; null: the global default.")
]
RateLimit = Annotated[int, _between(RATE_LIMIT_RANGE, "Deliveries per second at most."), WHOLE]
MaxInFlight = Annotated[
    int,
    _between(
        MAX_IN_FLIGHT_RANGE,
        "Deliveries in flight at once, across workers (`keyed`, `none`; "
        "`strict` sends one at a time).",
    ),
    WHOLE,
]
SchemaVersion = Annotated[
    int, _between(SCHEMA_VERSION_RANGE, "Receive only events of this schema version."), WHOLE
]
Signature = Annotated[
    SignatureKind,
    Field(
        description="How deliveries are signed: `hmac` (`v1`, a shared `whsec_` secret) or "
        "`ed25519` (`v1a`, a keypair hookline makes; the subscriber gets only the `whpk_` "
        "public key)."
    ),
]
RetrySchedule = Annotated[
    list[Annotated[float, Field(ge=0, le=RETRY_DELAY_MAX)]],
    Field(
        min_length=1,
        max_length=RETRY_SCHEDULE_MAX,
        description="Seconds between attempts (+-20% jitter), one retry each; null: the "
        "installation's HOOKLINE_RETRY_SCHEDULE.",
    ),
]
DisableAfter = Annotated[
    float,
    _between(
        DISABLE_AFTER_RANGE,
        "Seconds the endpoint may fail without a single success before hookline "
        "disables it (warnings at 50% and 90%); null: the tenant's, else the installation's "
        "HOOKLINE_ENDPOINT_DISABLE_AFTER (5 days).",
    ),
]


def options(name: str) -> tuple[str, ...]:
    """The values a choice field takes, as its type says."""
    kind, _ = CHOICES[name]
    return tuple(str(v) for v in get_args(kind))
