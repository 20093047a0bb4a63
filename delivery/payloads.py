"""The bytes of a delivery request body, built once per attempt and signed as sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


def iso_time(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a ``Z``, as receivers parse most easily."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def thin_body(
    event_id: str,
    type_: str,
    created_at: datetime,
    subject: str | None,
    url: str | None,
    event_link: str,
) -> bytes:
    """Event notification: who/what/when and a signed link to fetch the full event."""
    body: dict[str, Any] = {"id": event_id, "type": type_, "timestamp": iso_time(created_at)}
    if subject is not None:
        body["subject"] = subject
    if url is not None:
        body["url"] = url
    body["links"] = {"event": event_link}
    return orjson.dumps(body)


def full_body(
    event_id: str, type_: str, created_at: datetime, subject: str | None, data_json: str
) -> bytes:
    """Event-carried state transfer: ``data`` is spliced in as stored, never re-encoded."""
    body: dict[str, Any] = {"id": event_id, "type": type_, "timestamp": iso_time(created_at)}
    if subject is not None:
        body["subject"] = subject
    body["data"] = orjson.Fragment(data_json)
    return orjson.dumps(body)
