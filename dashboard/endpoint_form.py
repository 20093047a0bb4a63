"""The endpoint form: what it offers, and reading what was posted into the fields the
kernel takes, with a message per field for anything wrong.

The fields, limits, defaults and choices are the kernel's (:mod:`hookline.endpoint_fields`,
which the API's models are built from too): a value is checked here with the kernel's own
types, and the messages quote its limits. What only the kernel can tell (the SSRF check of
the URL, whether the subscriber exists) comes back as :class:`~hookline.errors.InvalidInput`
and is put next to its field by :func:`kernel_errors`, worded for the person looking by
:func:`say`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData

from hookline import endpoint_fields as spec
from hookline.db import Row
from hookline.errors import NOT_ALLOWED, UNKNOWN, UNRESOLVABLE, InvalidInput, Problem
from hookline.fields import TEXT_MAX, URL_MAX, Name, Text
from hookline.sessions import Session

# what the form edits (subscriber and signature only at registration)
EDITABLE = (
    "url",
    "description",
    "event_types",
    "ordering",
    "on_exhausted",
    "payload",
    "format",
    "timeout",
    "rate_limit",
    "max_in_flight",
)
FIELDS = ("subscriber", *EDITABLE, "signature")


def _n(value: float) -> str:
    return f"{value:,g}" if value < 10_000 else f"{value:,.0f}"


_LOW, _HIGH = spec.TIMEOUT_RANGE
_RATE_LOW, _RATE_HIGH = spec.RATE_LIMIT_RANGE
_FLIGHT_LOW, _FLIGHT_HIGH = spec.MAX_IN_FLIGHT_RANGE
# each checked field: the kernel's type, and what to say when a value is not one
_CHECKS: dict[str, tuple[TypeAdapter[Any], str]] = {
    "url": (
        TypeAdapter(spec.TargetUrl),
        f"the http(s) URL of the receiver (at most {_n(URL_MAX)} characters), "
        "e.g. https://example.com/hooks",
    ),
    "description": (TypeAdapter(Text), f"at most {_n(TEXT_MAX)} characters"),
    "event_types": (
        TypeAdapter(spec.EventTypes),
        f"pick at most {_n(spec.EVENT_TYPES_MAX)} types from the catalog",
    ),
    "timeout": (
        TypeAdapter(spec.Timeout),
        f"seconds from {_n(_LOW)} to {_n(_HIGH)}, e.g. 5 or 2.5; leave it empty for the default",
    ),
    "rate_limit": (
        TypeAdapter(spec.RateLimit),
        f"a whole number of deliveries per second from {_n(_RATE_LOW)} to "
        f"{_n(_RATE_HIGH)}; leave it empty for no limit",
    ),
    "max_in_flight": (
        TypeAdapter(spec.MaxInFlight),
        f"a whole number from {_n(_FLIGHT_LOW)} to {_n(_FLIGHT_HIGH)}",
    ),
    "subscriber": (TypeAdapter(Name), "choose the subscriber this endpoint belongs to"),
}
# fields whose empty value means "none" (the default, or no limit)
_OPTIONAL = frozenset({"timeout", "rate_limit"})
# what a browser sends is text: these are read as numbers first
_NUMBERS = {"timeout": float, "rate_limit": int, "max_in_flight": int}


@dataclass
class EndpointForm:
    """The form as typed (``values``, ``event_types``), what is wrong with it (``errors``,
    by field; ``form`` for the whole), and what it asks the kernel for (``fields``)."""

    values: dict[str, str]
    event_types: list[str]
    errors: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def blank_form(subscriber: str = "") -> EndpointForm:
    """A new endpoint's form, showing the kernel's defaults."""
    values = dict.fromkeys(FIELDS, "")
    for name in FIELDS:
        default = spec.DEFAULTS.get(name)
        if isinstance(default, str | int) and not isinstance(default, bool):
            values[name] = str(default)
    values["subscriber"] = subscriber
    return EndpointForm(values, [])


def form_of(endpoint: Row) -> EndpointForm:
    values = {name: str(endpoint[name] or "") for name in EDITABLE if name != "event_types"}
    values["timeout"] = _seconds(endpoint["timeout"])
    return EndpointForm(values, list(endpoint["event_types"] or []))


def _choice(f: EndpointForm, name: str) -> None:
    keys = spec.options(name)
    if f.values[name] in keys:
        f.fields[name] = f.values[name]
    else:
        f.errors[name] = f"choose one of: {', '.join(keys)}"


def _check(f: EndpointForm, name: str, value: Any) -> None:
    """``value`` as the kernel's type for ``name`` takes it, else the field's message."""
    adapter, message = _CHECKS[name]
    if name in _NUMBERS and isinstance(value, str):
        if not value and name in _OPTIONAL:
            f.fields[name] = None
            return
        try:
            value = _NUMBERS[name](value)
        except ValueError:
            f.errors[name] = message
            return
    try:
        f.fields[name] = adapter.validate_python(value)
    except ValidationError:
        f.errors[name] = message


def read_form(data: FormData, *, creating: bool, session: Session) -> EndpointForm:
    """The posted form, checked with the kernel's types; the kernel checks the rest."""
    values = {name: str(data.get(name) or "").strip() for name in FIELDS}
    types = list(dict.fromkeys(str(t) for t in data.getlist("event_types")))
    f = EndpointForm(values, types)
    _check(f, "url", values["url"])
    _check(f, "description", values["description"])
    if types:
        _check(f, "event_types", types)
    else:
        f.fields["event_types"] = None  # none picked: every type
    for name in ("ordering", "on_exhausted", "payload", "format"):
        _choice(f, name)
    for name in ("timeout", "rate_limit", "max_in_flight"):
        _check(f, name, values[name])
    if creating:
        _choice(f, "signature")
        if session.is_subscriber:
            f.fields["subscriber"] = session.subscriber_uid
        else:
            _check(f, "subscriber", values["subscriber"])
    return f


def say(problem: Problem, session: Session) -> str:
    """A kernel problem as the person looking can act on it: a subscriber cannot change
    the installation's settings, so it is told to use a public URL instead."""
    if problem.kind == NOT_ALLOWED:
        if session.is_subscriber:
            return (
                f"{problem.message}; hookline only delivers to public addresses: use a URL "
                "that is reachable from the internet"
            )
        return (
            f"{problem.message}; hookline only delivers to public addresses: use a public "
            "URL, or allow the network with HOOKLINE_ALLOWED_TARGET_NETWORKS"
        )
    if problem.kind == UNKNOWN and problem.at[-1:] == ("subscriber",):
        return "no such subscriber; it may have been deleted"
    if problem.kind == UNRESOLVABLE:
        return f"{problem.message}: check the host name"
    return problem.said()


def kernel_errors(exc: InvalidInput, session: Session) -> dict[str, str]:
    """The kernel's problems, each next to its field (``form`` for the rest)."""
    found: dict[str, str] = {}
    for problem in exc.problems:
        name = str(problem.at[-1]) if problem.at and str(problem.at[-1]) in FIELDS else "form"
        found.setdefault(name, say(problem, session))
    return found or {"form": exc.detail}
