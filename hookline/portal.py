"""Magic links into the subscriber portal: single use, expiring, stored only as hashes.

The API hands a tenant a link for one of its subscribers (``POST
/v1/subscribers/{uid}/portal-link``); the tenant passes it on, and whoever opens it gets a
dashboard session as that subscriber. The token is 32 random bytes; only its SHA-256 is
stored, so the table opens no portal. Redeeming marks the link used in the same
statement that checks it, so two redemptions racing on one link start one session.

For the dashboard: open the link with a page that redeems on a POST (a button, or a form
submitted by script), not on the GET itself, or mail scanners that prefetch links would
use them up before the person clicks.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from hookline.db import QUERIES, Pool
from hookline.errors import NotFound

#: Where a portal link points on ``HOOKLINE_PUBLIC_URL``; the token is its ``token`` query.
PORTAL_LOGIN_PATH = "/portal/login"
# how long an expired link is kept, so that opening it says "expired" rather than unknown
EXPIRED_LINK_KEPT = 86400.0  # seconds
_TOKEN_PREFIX = "hkp_"  # noqa: S105 (a prefix, not a secret); lets secret scanners spot leaks


@dataclass(frozen=True)
class PortalLink:
    url: str
    token: str
    expires_at: datetime


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_portal_link(
    pool: Pool, tenant_id: str, uid: str, *, public_url: str, ttl: float
) -> PortalLink:
    """A new magic link for subscriber ``uid``, valid once for ``ttl`` seconds."""
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = await pool.fetchval(
        QUERIES["create_portal_link"], tenant_id, uid, _token_hash(token), ttl, EXPIRED_LINK_KEPT
    )
    if expires_at is None:
        raise NotFound(f"no subscriber {uid!r}")
    url = f"{public_url.rstrip('/')}{PORTAL_LOGIN_PATH}?token={quote(token)}"
    return PortalLink(url, token, expires_at)


async def redeem_portal_link(pool: Pool, token: str) -> tuple[str, str]:
    """Use up a magic link; return the ``(tenant_id, subscriber_id)`` to start a session for.

    Raises :class:`NotFound` for a link that is unknown, used already, or expired (the
    message says which, for the person holding it).
    """
    digest = _token_hash(token)
    used = await pool.fetchrow(QUERIES["redeem_portal_link"], digest)
    if used is not None:
        return str(used["tenant_id"]), str(used["subscriber_id"])
    state = await pool.fetchrow(QUERIES["get_portal_link"], digest)
    if state is None:
        raise NotFound("this portal link is not valid; ask for a new one")
    if state["used_at"] is not None:
        raise NotFound("this portal link was used already; ask for a new one")
    raise NotFound("this portal link has expired; ask for a new one")
