"""Standard Webhooks 1.0 signatures: ``v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from functools import lru_cache

from hookline.secrets import signing_key


@lru_cache(maxsize=4096)
def _key(secret: str) -> bytes:
    # decoding base64 per request is measurable at thousands of deliveries a second
    return signing_key(secret)


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret, separated by one space.

    During a rotation's grace period every still-valid secret signs, newest first, so a
    receiver holding either the old or the new secret can verify.
    """
    content = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(_key(s), content, hashlib.sha256).digest()).decode()
        for s in secrets
    )
