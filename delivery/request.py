"""The request of one delivery attempt, exactly as PRODUCT.md specifies it: the body in the
endpoint's payload mode and format, and the headers that sign it."""

from __future__ import annotations

import time

import asyncpg
import orjson

from delivery import payloads
from delivery.attempt import request_headers
from delivery.signing import sign
from hookline.links import event_link
from hookline.settings import Settings


def build_request(settings: Settings, job: asyncpg.Record) -> tuple[dict[str, str], bytes]:
    """Headers and the exact body bytes to sign and send for one claimed delivery."""
    full = job["payload"] == "full"
    link = ""
    if not full:
        assert settings.secret_key is not None
        link = event_link(
            settings.public_url,
            settings.secret_key,
            job["event_id"],
            job["endpoint_id"],
            settings.fetch_link_ttl,
            time.time(),
        )
    sequence = job["seq"] if job["ordering"] != "none" else None
    content_type = "application/json"
    if job["format"] == "cloudevents":
        content_type = "application/cloudevents+json"
        body = payloads.cloudevent_body(
            event_id=job["event_id"],
            type_=job["type"],
            created_at=job["created_at"],
            subject=job["subject"],
            source=f"urn:hookline:{job['tenant_id']}",
            data=orjson.Fragment(job["data"])
            if full
            else payloads.thin_data(job["event_url"], link),
            sequence=sequence,
            partition_key=(job["ordering_key"] or job["subject"])
            if job["ordering"] == "keyed"
            else None,
        )
    elif full:
        body = payloads.full_body(
            job["event_id"], job["type"], job["created_at"], job["subject"], job["data"]
        )
    else:
        body = payloads.thin_body(
            job["event_id"],
            job["type"],
            job["created_at"],
            job["subject"],
            job["event_url"],
            link,
        )
    timestamp = int(time.time())
    headers = request_headers(
        custom=orjson.loads(job["headers"]),
        content_type=content_type,
        msg_id=job["event_id"],
        timestamp=timestamp,
        signature=sign(job["secrets"], job["event_id"], timestamp, body),
        attempt=job["attempts"] + 1,
        sequence=sequence,
    )
    return headers, body
