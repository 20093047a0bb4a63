"""Signed, expiring links to one event's full content (the ``links.event`` of thin payloads).

The signature is an HMAC of the event id, the endpoint the link was sent to and the expiry,
under the installation's secret key: whoever holds the link can fetch that one event until
it expires, and each fetch is recorded against the endpoint it was made for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import urlencode


def _mac(secret_key: str, event_id: str, endpoint_id: str, expires: int) -> str:
    message = f"event:{event_id}:{endpoint_id}:{expires}".encode()
    digest = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def event_link(
    public_url: str, secret_key: str, event_id: str, endpoint_id: str, ttl: int, now: float
) -> str:
    expires = int(now) + ttl
    query = urlencode(
        {
            "endpoint": endpoint_id,
            "expires": expires,
            "sig": _mac(secret_key, event_id, endpoint_id, expires),
        }
    )
    return f"{public_url.rstrip('/')}/v1/events/{event_id}/content?{query}"


def verify_event_link(
    secret_key: str, event_id: str, endpoint_id: str, expires: str, sig: str
) -> bool:
    """True when ``sig`` was made by :func:`event_link` for these and has not expired."""
    try:
        expires_at = int(expires)
    except ValueError:
        return False
    if expires_at < time.time():
        return False
    return hmac.compare_digest(_mac(secret_key, event_id, endpoint_id, expires_at), sig)
