"""The vault: credentials hookline must be able to read back (signing secrets, custom header
values that carry credentials), sealed at rest with AES-256-GCM.

A database dump, a backup or a read-only SQL injection shows sealed text only. The key is
derived (HKDF-SHA256) from ``HOOKLINE_SECRET_KEY``; a sealed value names the key it was
sealed under (a short id derived from it), so a rotation works in two steps:

1. set the new ``HOOKLINE_SECRET_KEY`` and the old one in ``HOOKLINE_PREVIOUS_SECRET_KEYS``
   and restart: new values are sealed under the new key, old ones still open;
2. run ``hookline secrets reencrypt``: every stored value is sealed under the new key; the
   old key can then leave ``HOOKLINE_PREVIOUS_SECRET_KEYS`` (once the thin-payload links
   signed with it have expired: ``HOOKLINE_FETCH_LINK_TTL``).

Each value is sealed with a context (what it is and whose) as associated data, so sealed
text copied to another tenant's row does not open there. Values stored before sealing
existed are read as they are, and ``hookline secrets reencrypt`` seals them.

Exceptions::

    Exception
     └── VaultError      a sealed value that no configured key opens (wrong or lost key)
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hookline.settings import Settings

PREFIX = "hlv1:"
#: What the API shows in place of a sealed header value; sent back unchanged in a PATCH of
#: ``headers``, it keeps the stored value.
REDACTED = "[redacted]"
_OPENED_KEPT = 10_000  # opened values kept in memory (a worker opens the same ones often)

# Parts of header names that say the value is a credential (`authorization`,
# `x-api-key`, `x-auth-token`, `cookie`, ...): such values are sealed, never shown and
# redacted in attempt history, whether or not the endpoint lists them as sensitive.
CREDENTIAL_WORDS = (
    "authorization",
    "auth",
    "cookie",
    "token",
    "secret",
    "key",
    "password",
    "passwd",
    "session",
    "credential",
    "private",
)


class VaultError(Exception):
    """A sealed value that none of the configured keys opens."""


def is_credential(name: str, marked: Sequence[str] = ()) -> bool:
    """Whether header ``name`` carries a credential: it looks like one, or the endpoint
    marked it sensitive (``marked``, any case)."""
    lowered = name.lower()
    return _looks_like_credential(lowered) or (
        bool(marked) and lowered in {m.lower() for m in marked}
    )


@lru_cache(maxsize=4096)
def _looks_like_credential(lowered: str) -> bool:
    # asked for every header of every attempt; the names repeat
    return any(word in lowered for word in CREDENTIAL_WORDS)


def _derive(secret_key: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"hookline", info=info).derive(
        secret_key.encode()
    )


class _Key:
    def __init__(self, secret_key: str) -> None:
        self.aead = AESGCM(_derive(secret_key, b"hookline at-rest key v1"))
        self.id = _derive(secret_key, b"hookline at-rest key id v1")[:4].hex()


class Vault:
    """Seals under the current key; opens under the current or any previous one."""

    def __init__(self, secret_key: str, previous: Sequence[str] = ()) -> None:
        self._current = _Key(secret_key)
        self._keys = {k.id: k for k in (_Key(s) for s in (*previous, secret_key))}
        self._opened: dict[tuple[str, str], str] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        settings.require("secret_key")
        assert settings.secret_key is not None
        return cls(settings.secret_key, settings.previous_secret_keys)

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._current.aead.encrypt(nonce, plaintext.encode(), context.encode())
        text = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{PREFIX}{self._current.id}:{text}"

    def open(self, stored: str, context: str) -> str:
        """The plaintext of a sealed value (a value stored before sealing: as it is)."""
        if not stored.startswith(PREFIX):
            return stored
        found = self._opened.get((stored, context))
        if found is not None:
            return found
        key_id, _, text = stored[len(PREFIX) :].partition(":")
        key = self._keys.get(key_id)
        if key is None:
            raise VaultError(
                f"a stored credential was sealed under key {key_id}, which is neither "
                "HOOKLINE_SECRET_KEY nor in HOOKLINE_PREVIOUS_SECRET_KEYS"
            )
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            plaintext = key.aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error):
            raise VaultError("a stored credential does not open (damaged, or moved)") from None
        if len(self._opened) >= _OPENED_KEPT:
            self._opened.clear()
        self._opened[(stored, context)] = plaintext
        return plaintext

    @property
    def current_prefix(self) -> str:
        """How every value sealed under the current key begins."""
        return f"{PREFIX}{self._current.id}:"

    def is_current(self, stored: str) -> bool:
        """Sealed under the current key (nothing for ``hookline secrets reencrypt`` to do)."""
        return stored.startswith(self.current_prefix)

    # -- what each stored credential is ------------------------------------------------

    def seal_secret(self, secret: str, tenant_id: str) -> str:
        return self.seal(secret, f"endpoint-secret:{tenant_id}")

    def open_secret(self, stored: str, tenant_id: str) -> str:
        return self.open(stored, f"endpoint-secret:{tenant_id}")

    def seal_headers(
        self,
        headers: Mapping[str, str],
        tenant_id: str,
        marked: Sequence[str],
        kept: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Custom headers as stored: credential values sealed, the others as they are.
        A value of :data:`REDACTED` keeps what ``kept`` (the stored headers) holds for
        that name, so a client may send back what it was shown; :class:`KeyError` (the
        name) when there is nothing to keep."""
        stored: dict[str, str] = {}
        before = {n.lower(): v for n, v in (kept or {}).items()}
        for name, value in headers.items():
            context = f"endpoint-header:{tenant_id}:{name.lower()}"
            if value == REDACTED:
                if name.lower() not in before:
                    raise KeyError(name)
                value = self.open(before[name.lower()], context)
            if is_credential(name, marked):
                value = self.seal(value, context)
            stored[name] = value
        return stored

    def open_headers(self, stored: Mapping[str, str], tenant_id: str) -> dict[str, str]:
        """Custom headers to send."""
        return {
            name: self.open(value, f"endpoint-header:{tenant_id}:{name.lower()}")
            for name, value in stored.items()
        }


def shown_headers(stored: Mapping[str, str]) -> dict[str, str]:
    """Custom headers fit to show: sealed values as :data:`REDACTED`."""
    return {n: REDACTED if v.startswith(PREFIX) else v for n, v in stored.items()}
