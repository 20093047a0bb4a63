"""Random credentials and their stored forms: API keys, signing secrets, passwords.

API keys are 32 random bytes; only their SHA-256 is stored (a fast hash is right for keys
with that much entropy, and lets every request find its key by index). Passwords are chosen
by people, so they get argon2.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_API_KEY_PREFIX = "hk_"
_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
_passwords = PasswordHasher()


def new_api_key() -> str:
    return _API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def api_key_display(key: str) -> str:
    """What may be shown of a key after creation: enough to tell keys apart."""
    return key[: len(_API_KEY_PREFIX) + 6]


def new_signing_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 32 random bytes."""
    return _SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_signing_secret(secret: str) -> str:
    """``secret`` when it is a usable chosen secret, else :class:`ValueError` saying why.

    A Standard Webhooks secret is ``whsec_`` and the base64 of 24 to 64 random bytes: fewer
    makes a weak HMAC key, and the reference libraries expect no more.
    """
    if not secret.startswith(_SECRET_PREFIX):
        raise ValueError(f"a signing secret starts with {_SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(_SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError(f"the part after {_SECRET_PREFIX!r} is not base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"a signing secret holds 24 to 64 bytes, not {len(key)}")
    return secret


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret: the base64-decoded part after the prefix."""
    return base64.b64decode(secret.removeprefix(_SECRET_PREFIX))


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _passwords.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
