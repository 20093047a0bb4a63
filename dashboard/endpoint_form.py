"""The endpoint form: what it offers, and reading what was posted into the fields the
kernel takes, with a message per field for anything wrong.

The limits are the API's (``api/endpoint_models.py``), checked here because the dashboard
does not import the API; what only the kernel can tell (the SSRF check of the URL, whether
the subscriber exists) comes back as :class:`~hookline.errors.InvalidInput` and is put next
to its field by :func:`kernel_errors`, worded for the person looking by :func:`say`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from hookline.db import Row
from hookline.errors import InvalidInput
from hookline.sessions import Session

ORDERINGS = (
    (
        "strict",
        "one at a time, in the order events were accepted; the next waits until the "
        "one before succeeds or is dead-lettered",
    ),
    (
        "keyed",
        "in order per ordering key (the event's subject unless the producer sets "
        "one); different keys go in parallel",
    ),
    ("none", "no order: deliveries go out in parallel, up to the in-flight limit"),
)
PAYLOADS = (
    ("thin", "Thin: id, type, subject and a signed link to fetch the whole event"),
    ("full", "Full: the event's data in the body"),
)
FORMATS = (
    ("standard", "Standard Webhooks JSON"),
    ("cloudevents", "CloudEvents 1.0 (structured mode)"),
)
ON_EXHAUSTED = (
    ("dead_letter", "Dead-letter it and go on with the next"),
    ("pause", "Pause the endpoint until someone resumes it"),
)
SIGNATURES = (
    ("hmac", "HMAC-SHA256 with a shared whsec_ secret"),
    ("ed25519", "Ed25519: verify with a whpk_ public key; the private key never leaves hookline"),
)
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
#: What a name (an event type, a subscriber's uid) may be, as the API says.
NAME = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
# how hookline.targets ends the refusal of an address: advice for whoever runs hookline
_TARGET_HINT = "; add the network to HOOKLINE_ALLOWED_TARGET_NETWORKS to allow it"


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
    values = dict.fromkeys(FIELDS, "")
    values.update(
        subscriber=subscriber,
        ordering="strict",
        on_exhausted="dead_letter",
        payload="thin",
        format="standard",
        max_in_flight="10",
        signature="hmac",
    )
    return EndpointForm(values, [])


def form_of(endpoint: Row) -> EndpointForm:
    values = {name: str(endpoint[name] or "") for name in EDITABLE if name != "event_types"}
    values["timeout"] = _seconds(endpoint["timeout"])
    return EndpointForm(values, list(endpoint["event_types"] or []))


def _choice(f: EndpointForm, name: str, options: Sequence[tuple[str, str]]) -> None:
    keys = [key for key, _ in options]
    if f.values[name] in keys:
        f.fields[name] = f.values[name]
    else:
        f.errors[name] = f"choose one of: {', '.join(keys)}"


def _number(
    f: EndpointForm,
    name: str,
    parse: Callable[[str], float],
    low: float,
    high: float,
    say: str,
    *,
    optional: bool = True,
) -> None:
    """A number from ``low`` to ``high``; empty is None (the default) if ``optional``.
    ``say`` is the message for anything else."""
    text = f.values[name]
    if not text and optional:
        f.fields[name] = None
        return
    try:
        value = parse(text)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and low <= value <= high:
        f.fields[name] = value
    else:
        f.errors[name] = say


def read_form(data: FormData, *, creating: bool, session: Session) -> EndpointForm:
    """The posted form, checked with the API's limits; the kernel checks the rest."""
    values = {name: str(data.get(name) or "").strip() for name in FIELDS}
    types = list(dict.fromkeys(str(t) for t in data.getlist("event_types")))
    f = EndpointForm(values, types)
    if not values["url"]:
        f.errors["url"] = (
            "required: the http(s) URL of the receiver, e.g. https://example.com/hooks"
        )
    elif len(values["url"]) > 2048:
        f.errors["url"] = "at most 2,048 characters"
    else:
        f.fields["url"] = values["url"]
    if len(values["description"]) > 1000:
        f.errors["description"] = "at most 1,000 characters"
    f.fields["description"] = values["description"]
    if any(not NAME.fullmatch(t) for t in types) or len(types) > 500:
        f.errors["event_types"] = "pick at most 500 types from the catalog"
    f.fields["event_types"] = types or None  # none picked: every type
    _choice(f, "ordering", [(key, "") for key, _ in ORDERINGS])
    _choice(f, "on_exhausted", ON_EXHAUSTED)
    _choice(f, "payload", PAYLOADS)
    _choice(f, "format", FORMATS)
    _number(
        f,
        "timeout",
        float,
        0.01,
        30,
        "seconds from 0.01 to 30, e.g. 5 or 2.5; leave it empty for the default",
    )
    _number(
        f,
        "rate_limit",
        int,
        1,
        100_000,
        "a whole number of deliveries per second from 1 to 100,000; leave it empty for no limit",
    )
    _number(f, "max_in_flight", int, 1, 1000, "a whole number from 1 to 1,000", optional=False)
    if creating:
        _choice(f, "signature", SIGNATURES)
        if session.is_subscriber:
            f.fields["subscriber"] = session.subscriber_uid
        elif NAME.fullmatch(values["subscriber"]):
            f.fields["subscriber"] = values["subscriber"]
        else:
            f.errors["subscriber"] = "choose the subscriber this endpoint belongs to"
    return f


def say(message: str, session: Session) -> str:
    """A kernel message as the person looking can act on it: a subscriber cannot change
    the installation's settings, so it is told to use a public URL instead."""
    if message.endswith(_TARGET_HINT):
        head = message[: -len(_TARGET_HINT)]
        if session.is_subscriber:
            return (
                f"{head}; hookline only delivers to public addresses: use a URL that is "
                "reachable from the internet"
            )
        return (
            f"{head}; hookline only delivers to public addresses: use a public URL, or "
            "allow the network with HOOKLINE_ALLOWED_TARGET_NETWORKS"
        )
    if message == "unknown subscriber":
        return "no such subscriber; it may have been deleted"
    if message.startswith("could not resolve"):
        return f"{message}: check the host name"
    return message


def kernel_errors(exc: InvalidInput, session: Session) -> dict[str, str]:
    found: dict[str, str] = {}
    for error in exc.errors or []:
        loc = error.get("loc") or ["form"]
        name = str(loc[-1]) if str(loc[-1]) in FIELDS else "form"
        found.setdefault(name, say(str(error.get("msg", "")), session))
    return found or {"form": say(exc.detail, session)}
