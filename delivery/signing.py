"""Standard Webhooks 1.0 signatures over ``"{id}.{timestamp}.{body}"``.

A ``whsec_`` secret signs ``v1,<base64 HMAC-SHA256(key, content)>``; a ``whsk_`` (ed25519)
secret signs ``v1a,<base64 ed25519 signature of content>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from functools import lru_cache

from hookline.secrets import private_key, signature_kind, signing_key

Signer = Callable[[bytes], str]


@lru_cache(maxsize=4096)
def _signer(secret: str) -> Signer:
    # parsing a key per request is measurable at thousands of deliveries a second: decoding
    # base64 for HMAC, and for ed25519 as long as the signature itself (~20 us each)
    if signature_kind(secret) == "ed25519":
        ed25519 = private_key(secret)
        return lambda content: "v1a," + base64.b64encode(ed25519.sign(content)).decode()
    key = signing_key(secret)
    return lambda content: (
        "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    )


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret, separated by one space.

    During a rotation's grace period every still-valid secret signs, newest first, so a
    receiver holding either the old or the new key can verify; a rotation that changes the
    kind sends a ``v1`` and a ``v1a`` signature side by side.
    """
    content = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(_signer(s)(content) for s in secrets)
