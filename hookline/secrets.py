"""Random credentials and their stored forms: API keys, signing secrets, passwords.

API keys are 32 random bytes; only their SHA-256 is stored (a fast hash is right for keys
with that much entropy, and lets every request find its key by index). Passwords are chosen
by people, so they get argon2.

An endpoint's signing secrets are stored as Standard Webhooks serialises them, and the
prefix tells the kind: ``whsec_`` (HMAC-SHA256, signs ``v1``) or ``whsk_`` (an ed25519
private key, signs ``v1a``). A ``whsk_`` never leaves the server: a subscriber is shown its
``whpk_`` public key instead (:func:`verifying_key`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_API_KEY_PREFIX = "hk_"
_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
_PRIVATE_KEY_PREFIX = "whsk_"
_PUBLIC_KEY_PREFIX = "whpk_"
_passwords = PasswordHasher()

#: How an endpoint signs: HMAC with a shared ``whsec_`` secret, or ed25519 with a ``whsk_``.
SignatureKind = Literal["hmac", "ed25519"]


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


_B64 = "[A-Za-z0-9+/]"
#: A chosen signing secret's shape, as the API document says it: ``whsec_`` and the
#: base64 of 24 to 64 bytes (8 to 20 groups of four and a partial one, or 21 and a byte).
SECRET_PATTERN = (
    f"^whsec_(?:(?:{_B64}{{4}}){{8,20}}(?:{_B64}{{2}}==|{_B64}{{3}}=)?"
    f"|(?:{_B64}{{4}}){{21}}(?:{_B64}{{2}}==)?)$"
)


def check_signing_secret(secret: str) -> str:
    """``secret`` when it is a usable chosen secret, else :class:`ValueError` saying why.

    A Standard Webhooks secret is ``whsec_`` and the base64 of 24 to 64 random bytes: fewer
    makes a weak HMAC key, and the reference libraries expect no more.
    """
    if secret.startswith(_PRIVATE_KEY_PREFIX):
        raise ValueError(
            "hookline makes ed25519 keys itself, so no private key travels: leave out "
            'the key and send {"signature": "ed25519"}'
        )
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


def new_private_key() -> str:
    """A Standard Webhooks ed25519 secret key: ``whsk_`` and base64 of a 32-byte seed.

    Any 32 random bytes are a valid ed25519 private key (RFC 8032 derives the scalar from
    them). The seed, not the 64-byte seed-and-public-key form, is what the reference
    libraries read after ``whsk_`` (Go: ``ed25519.NewKeyFromSeed``).
    """
    return _PRIVATE_KEY_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_secret(kind: SignatureKind) -> str:
    """A new signing secret of ``kind``: ``whsec_...`` for HMAC, ``whsk_...`` for ed25519."""
    return new_private_key() if kind == "ed25519" else new_signing_secret()


def signature_kind(secret: str) -> SignatureKind:
    """How a stored signing secret signs, told by its prefix."""
    return "ed25519" if secret.startswith(_PRIVATE_KEY_PREFIX) else "hmac"


def private_key(secret: str) -> Ed25519PrivateKey:
    """The ed25519 private key of a ``whsk_`` secret (ValueError if it is not one)."""
    if not secret.startswith(_PRIVATE_KEY_PREFIX):
        raise ValueError(f"an ed25519 secret key starts with {_PRIVATE_KEY_PREFIX!r}")
    try:
        seed = base64.b64decode(secret.removeprefix(_PRIVATE_KEY_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError(f"the part after {_PRIVATE_KEY_PREFIX!r} is not base64") from None
    # the key's bytes stay out of the message: it may reach a log
    if len(seed) != 32:
        raise ValueError(f"an ed25519 secret key holds 32 bytes, not {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key(secret: str) -> str:
    """The ``whpk_`` public key of a ``whsk_`` secret: base64 of the raw 32-byte key."""
    raw = private_key(secret).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return _PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode()


def verifying_key(secret: str) -> str:
    """What a subscriber verifies with and may be shown: a ``whsec_`` secret as it is, the
    ``whpk_`` public key of a ``whsk_`` one (never the private key)."""
    return public_key(secret) if signature_kind(secret) == "ed25519" else secret


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _passwords.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
