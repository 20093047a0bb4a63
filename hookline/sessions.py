"""Dashboard sessions for operators (email and password) and subscribers (portal links).

The cookie holds 32 random bytes; only their SHA-256 is stored. A login always starts a
new session (the token is never reused or carried over), so a token planted before login
is worth nothing after it. Each session has its own CSRF token, which every form and
every htmx request must echo.

Checking a password costs argon2's ~140 ms of CPU (over four threads) and 64 MiB, so it
runs in worker threads at the lowest priority, never on the event loop, and only a few at
once (:class:`PasswordChecks`): a burst of logins waits its turn while every other request
goes on being answered, and takes only the CPU nothing else wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from hookline.db import QUERIES, Pool
from hookline.secrets import hash_password, verify_password

OPERATOR_TTL = 12 * 3600  # seconds; a working day
SUBSCRIBER_TTL = 8 * 3600
_TOKEN_PREFIX = "hks_"  # noqa: S105 (a prefix, not a secret)
# verified against when the email is unknown, so a miss costs what a wrong password costs
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Session:
    """Who is looking: an operator of a tenant, or one subscriber of it (``subscriber_id``
    set). Every dashboard query is scoped by ``tenant_id`` and, for a subscriber, by
    ``subscriber_id`` too."""

    tenant_id: str
    tenant_name: str
    csrf_token: str
    user_id: str | None = None
    email: str | None = None
    subscriber_id: str | None = None
    subscriber_uid: str | None = None
    subscriber_name: str | None = None

    @property
    def is_subscriber(self) -> bool:
        return self.subscriber_id is not None

    def csrf_ok(self, sent: str | None) -> bool:
        # as bytes: compare_digest refuses str with non-ASCII characters (TypeError, a 500)
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


class PasswordChecks:
    """argon2 verifications off the event loop, at most ``at_once`` at a time; the others
    wait for a turn. One per app (the dashboard keeps it on ``app.state``); the semaphore
    is made here, in the event loop that first checks a password, not at import."""

    def __init__(self, at_once: int = 2) -> None:
        self._slots = asyncio.Semaphore(at_once)
        self._threads = ThreadPoolExecutor(
            at_once, thread_name_prefix="argon2", initializer=_yield_the_cores
        )

    async def verify(self, password_hash: str, password: str) -> bool:
        async with self._slots:
            loop = asyncio.get_running_loop()
            work = loop.run_in_executor(self._threads, verify_password, password_hash, password)
            try:
                return await asyncio.shield(work)
            finally:
                if not work.done():
                    # cancelled while the thread hashes: a thread cannot be stopped, so
                    # keep the turn until it is free, or the bound would not hold
                    await asyncio.wait([work])


def _yield_the_cores() -> None:
    """Run this thread (and the threads argon2 starts from it, which inherit it) at the
    lowest priority: one check costs ~140 ms of CPU over four threads, so a burst of
    logins would otherwise take the cores from ingest and delivery. Under load a login
    waits a little longer; nothing else does."""
    me = threading.get_native_id()
    try:
        # SCHED_IDLE: only when nothing else wants the core (and preempted at once)
        os.sched_setscheduler(me, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):
        with contextlib.suppress(OSError, AttributeError):  # not Linux: as it is
            os.setpriority(os.PRIO_PROCESS, me, 19)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def authenticate(
    pool: Pool, checks: PasswordChecks, email: str, password: str
) -> tuple[str, str] | None:
    """``(tenant_id, user_id)`` when the password is right, else None (which of the two
    was wrong is not told). The hash is checked through ``checks``, off the event loop."""
    found = await pool.fetchrow(QUERIES["user_for_login"], email.strip().lower())
    if found is None:
        await checks.verify(_DUMMY_HASH, password)
        return None
    if not await checks.verify(found["password_hash"], password):
        return None
    return str(found["tenant_id"]), str(found["id"])


async def start_session(
    pool: Pool, tenant_id: str, *, user_id: str | None = None, subscriber_id: str | None = None
) -> str:
    """A new session; returns the cookie token (shown once, stored only as a hash)."""
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    ttl = OPERATOR_TTL if user_id is not None else SUBSCRIBER_TTL
    await pool.execute(
        QUERIES["create_session"],
        _hash(token),
        tenant_id,
        user_id,
        subscriber_id,
        secrets.token_urlsafe(32),
        ttl,
    )
    return token


async def load_session(pool: Pool, token: str) -> Session | None:
    if not token.startswith(_TOKEN_PREFIX) or len(token) > 100:
        return None
    found = await pool.fetchrow(QUERIES["load_session"], _hash(token))
    if found is None:
        return None
    return Session(
        tenant_id=found["tenant_id"],
        tenant_name=found["tenant_name"],
        csrf_token=found["csrf_token"],
        user_id=found["user_id"],
        email=found["email"],
        subscriber_id=found["subscriber_id"],
        subscriber_uid=found["subscriber_uid"],
        subscriber_name=found["subscriber_name"],
    )


async def end_session(pool: Pool, token: str) -> None:
    await pool.execute(QUERIES["delete_session"], _hash(token))
