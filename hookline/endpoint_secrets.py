"""An endpoint's signing secrets: what a subscriber is shown of them, and rotation.

Secrets are stored sealed (:mod:`hookline.vault`) beside how each signs (``kind``), and
opened only here (to show a ``whsec_`` or derive a ``whpk_``) and in the worker (to sign).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import orjson

from hookline import secrets
from hookline.db import QUERIES, Pool, Row
from hookline.errors import InvalidInput, NotFound, Problem
from hookline.vault import PREFIX, Vault, is_credential

#: Replaced signing secrets kept at most after a rotation (at most 10 old keys).
OLD_SECRETS_KEPT = 10


def _shown_keys(vault: Vault, tenant_id: str, valid: Sequence[asyncpg.Record]) -> Row:
    """What a subscriber may see of an endpoint's signing secrets (newest first): the key
    to verify with, how it signs, and every ed25519 public key still signing. A ``whsk_``
    private key never leaves this function."""
    opened = [
        (vault.open_secret(r["secret"], tenant_id), r["kind"], r["expires_at"]) for r in valid
    ]
    current = opened[0][0]
    return {
        "key": secrets.verifying_key(current),
        "signature": opened[0][1],
        "public_keys": [
            {"key": secrets.public_key(secret), "expires_at": expires_at}
            for secret, kind, expires_at in opened
            if kind == "ed25519"
        ],
    }


async def signing_keys(
    pool: Pool, tenant_id: str, endpoint_id: str, subscriber_id: str | None = None, *, vault: Vault
) -> Row:
    """The endpoint's verifying keys as :func:`_shown_keys` gives them."""
    valid = await pool.fetch(QUERIES["signing_secrets"], tenant_id, endpoint_id, subscriber_id)
    if not valid:
        raise NotFound(f"no endpoint {endpoint_id!r}")
    return _shown_keys(vault, tenant_id, valid)


def _new_secret(
    current: secrets.SignatureKind, new: str | None, kind: secrets.SignatureKind | None
) -> str:
    try:
        if new is None:
            return secrets.new_secret(kind or current)
        if kind == "ed25519":
            raise ValueError(
                "hookline makes ed25519 keys itself, so no private key travels: "
                'send {"signature": "ed25519"} without a key'
            )
        return secrets.check_signing_secret(new)
    except ValueError as exc:
        raise InvalidInput(str(exc), problems=[Problem(("key",), str(exc))]) from None


async def rotate_secret(
    pool: Pool,
    tenant_id: str,
    endpoint_id: str,
    grace: float,
    new: str | None = None,
    kind: secrets.SignatureKind | None = None,
    subscriber_id: str | None = None,
    *,
    vault: Vault,
) -> Row:
    """Make a new signing secret current; return the keys as :func:`signing_keys` does.

    The new secret is ``new`` (a chosen ``whsec_``), else a fresh one of ``kind``, else of
    the current secret's kind: ``kind`` switches between HMAC and ed25519, whose keypairs
    hookline always makes itself. The replaced secret keeps signing beside it for
    ``grace`` seconds, so receivers can switch without dropping a request: every delivery
    meanwhile carries one signature per valid secret (``v1`` and ``v1a`` side by side when
    the kind changed). At most :data:`OLD_SECRETS_KEPT` replaced secrets are kept; the
    oldest go first.
    """
    async with pool.acquire() as conn, conn.transaction():
        # the endpoint stays locked to the end, so the kind read is the kind replaced
        current = await conn.fetchval(
            QUERIES["lock_current_secret"], tenant_id, endpoint_id, subscriber_id
        )
        if current is None:
            raise NotFound(f"no endpoint {endpoint_id!r}")
        secret = _new_secret(current, new, kind)
        await conn.execute(
            QUERIES["rotate_secret"],
            tenant_id,
            endpoint_id,
            vault.seal_secret(secret, tenant_id),
            grace,
            OLD_SECRETS_KEPT,
            secrets.signature_kind(secret),
        )
        valid = await conn.fetch(QUERIES["signing_secrets"], tenant_id, endpoint_id, None)
    return _shown_keys(vault, tenant_id, valid)


async def reseal_all(
    pool: Pool, vault: Vault, progress: Callable[[str], None] = lambda _: None
) -> tuple[int, int]:
    """Seal every stored credential under the current key: signing secrets and credential
    header values stored in plain text (before sealing existed) or under a previous key.
    Returns (secrets, endpoints whose headers) resealed. Safe to run while hookline runs:
    a row that changed meanwhile is left (it was written sealed under the current key)."""
    current = vault.current_prefix
    secrets_done = 0
    after: tuple[str, Any] | None = None
    while True:
        page = await pool.fetch(
            QUERIES["secrets_to_reseal"],
            current,
            after[0] if after else None,
            after[1] if after else None,
            _PAGE,
        )
        for r in page:
            plain = vault.open_secret(r["secret"], r["tenant_id"])
            fresh = vault.seal_secret(plain, r["tenant_id"])
            done = await pool.execute(
                QUERIES["reseal_secret"], r["endpoint_id"], r["created_at"], r["secret"], fresh
            )
            secrets_done += done.endswith(" 1")
        if page:
            after = (page[-1]["endpoint_id"], page[-1]["created_at"])
            progress(f"signing secrets: {secrets_done} resealed")
        if len(page) < _PAGE:
            break
    headers_done = 0
    last: str | None = None
    while True:
        page = await pool.fetch(QUERIES["headers_to_reseal"], last, _PAGE)
        for r in page:
            stored: dict[str, str] = orjson.loads(r["headers"])
            if not _stale(vault, stored, r["sensitive_headers"]):
                continue
            opened = vault.open_headers(stored, r["tenant_id"])
            sealed = vault.seal_headers(opened, r["tenant_id"], r["sensitive_headers"])
            done = await pool.execute(QUERIES["reseal_headers"], r["id"], r["headers"], sealed)
            headers_done += done.endswith(" 1")
        if page:
            last = page[-1]["id"]
            progress(f"endpoint headers: {headers_done} resealed")
        if len(page) < _PAGE:
            break
    return secrets_done, headers_done


_PAGE = 500


def _stale(vault: Vault, stored: dict[str, str], marked: Sequence[str]) -> bool:
    """Some value sealed under an old key, or a credential not sealed at all."""
    return any(
        not vault.is_current(v) if v.startswith(PREFIX) else is_credential(n, marked)
        for n, v in stored.items()
    )
