"""The bytes of a delivery request body, built once per attempt and signed as sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


def iso_time(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a ``Z``, as receivers parse most easily."""
    # isoformat is C; strftime parses its format on every call
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


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


def thin_data(url: str | None, event_link: str) -> dict[str, Any]:
    """What a thin CloudEvent carries as ``data``: where to fetch the full event."""
    data: dict[str, Any] = {"links": {"event": event_link}}
    if url is not None:
        data["url"] = url
    return data


def cloudevent_body(
    *,
    event_id: str,
    type_: str,
    created_at: datetime,
    subject: str | None,
    source: str,
    data: Any,
    sequence: int | None,
    partition_key: str | None,
) -> bytes:
    """A CloudEvents 1.0 structured-mode event (``application/cloudevents+json``).

    ``data`` is the event's data (full payload, spliced as stored) or :func:`thin_data`.
    ``sequence`` and ``partitionkey`` are the CloudEvents extensions of those names; the
    sequence is a string, as that extension defines it.
    """
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": type_,
        "time": iso_time(created_at),
        "datacontenttype": "application/json",
    }
    if subject is not None:
        body["subject"] = subject
    if sequence is not None:
        body["sequence"] = str(sequence)
    if partition_key is not None:
        body["partitionkey"] = partition_key
    body["data"] = data
    return orjson.dumps(body)
