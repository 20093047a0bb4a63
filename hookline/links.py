"""Signed, expiring links to one event's full content (the ``links.event`` of thin payloads).

The signature is an HMAC of the event id and expiry under the installation's secret key, so
whoever holds the link can fetch that one event until it expires, and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def _mac(secret_key: str, event_id: str, expires: int) -> str:
    digest = hmac.new(
        secret_key.encode(), f"event:{event_id}:{expires}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def event_link(public_url: str, secret_key: str, event_id: str, ttl: int, now: float) -> str:
    expires = int(now) + ttl
    sig = _mac(secret_key, event_id, expires)
    return f"{public_url.rstrip('/')}/v1/events/{event_id}/content?expires={expires}&sig={sig}"


def verify_event_link(secret_key: str, event_id: str, expires: str, sig: str) -> bool:
    """True when ``sig`` was made by :func:`event_link` for this event and has not expired."""
    try:
        expires_at = int(expires)
    except ValueError:
        return False
    if expires_at < time.time():
        return False
    return hmac.compare_digest(_mac(secret_key, event_id, expires_at), sig)
