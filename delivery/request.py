"""The request of one delivery attempt, exactly as the README's "The delivery request"
describes it: the body in the endpoint's payload mode and format, and the headers that
sign it."""

from __future__ import annotations

import time

import asyncpg
import orjson

from delivery import payloads
from delivery.attempt import request_headers
from delivery.signing import sign
from hookline.links import event_link
from hookline.settings import Settings
from hookline.vault import Vault


def build_request(
    settings: Settings, vault: Vault, job: asyncpg.Record
) -> tuple[dict[str, str], bytes]:
    """Headers and the exact body bytes to sign and send for one claimed delivery (its
    secrets and credential headers opened from the vault)."""
    full = job["payload"] == "full"
    tenant_id = job["tenant_id"]
    signing = [vault.open_secret(stored, tenant_id) for stored in job["secrets"]]
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
            signing[0],  # the current secret: the link dies when it stops signing
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
        custom=vault.open_headers(orjson.loads(job["headers"]), tenant_id),
        content_type=content_type,
        msg_id=job["event_id"],
        timestamp=timestamp,
        signature=sign(signing, job["event_id"], timestamp, body),
        attempt=job["attempts"] + 1,
        sequence=sequence,
    )
    return headers, body
