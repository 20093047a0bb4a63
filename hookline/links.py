"""Signed, expiring links to one event's full content (the ``links.event`` of thin payloads).

The signature is an HMAC, under the installation's secret key, of the event id, the
endpoint the link was sent to, the expiry and a fingerprint of the endpoint's signing
secret at the time. Whoever holds the link can fetch that one event until it expires, and
each fetch is recorded against the endpoint it was made for. The link dies early with its
endpoint (no secret left to match) and when the secret it was made under stops signing (a
rotation's grace period has ended), so a leaked link is revoked by rotating the secret.
Links made under an earlier ``HOOKLINE_SECRET_KEY`` still verify while that key is listed in
``HOOKLINE_PREVIOUS_SECRET_KEYS``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=4096)
def _fingerprint(signing_secret: str) -> str:
    # one per endpoint secret, asked for by every thin delivery to it
    return hashlib.sha256(signing_secret.encode()).hexdigest()[:32]


def _mac(secret_key: str, event_id: str, endpoint_id: str, expires: int, print_: str) -> str:
    message = f"event:{event_id}:{endpoint_id}:{expires}:{print_}".encode()
    digest = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def event_link(
    public_url: str,
    secret_key: str,
    event_id: str,
    endpoint_id: str,
    ttl: int,
    now: float,
    signing_secret: str,
) -> str:
    """The link for ``endpoint_id``'s delivery of ``event_id``, made under the endpoint's
    current ``signing_secret``."""
    expires = int(now) + ttl
    sig = _mac(secret_key, event_id, endpoint_id, expires, _fingerprint(signing_secret))
    # ids are hookline's own (letters, digits, underscores) and sig is base64url: nothing
    # in the query needs escaping
    query = f"endpoint={endpoint_id}&expires={expires}&sig={sig}"
    return f"{public_url.rstrip('/')}/v1/events/{event_id}/content?{query}"


def verify_event_link(
    secret_keys: Sequence[str],
    event_id: str,
    endpoint_id: str,
    expires: str,
    sig: str,
    signing_secrets: Sequence[str],
) -> bool:
    """True when ``sig`` was made by :func:`event_link` for these, under one of
    ``secret_keys`` and one of the endpoint's ``signing_secrets`` still signing, and has
    not expired."""
    try:
        expires_at = int(expires)
    except ValueError:
        return False
    if expires_at < time.time():
        return False
    prints = [_fingerprint(s) for s in signing_secrets]
    return any(
        hmac.compare_digest(_mac(key, event_id, endpoint_id, expires_at, p), sig)
        for key in secret_keys
        for p in prints
    )
