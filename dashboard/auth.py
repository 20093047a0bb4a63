"""Signing in and out: operators with email and password, subscribers with a portal link.

Failed logins are counted in Redis per email and per client address over a quarter of an
hour; past the limit the form answers 429 with the wait, whatever the password. Redis
being down does not lock everyone out: the count is skipped (and logged).
A portal link is redeemed on a POST from the page the link opens, never on the GET, so a
mail scanner that prefetches links does not use it up.
"""

from __future__ import annotations

import contextlib
import logging
from urllib.parse import urlsplit

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.web import (
    COOKIE,
    HEADERS,
    Services,
    form,
    render,
    same_origin,
    services,
    viewer,
)
from hookline.errors import NotFound
from hookline.portal import PORTAL_LOGIN_PATH, redeem_portal_link
from hookline.sessions import (
    OPERATOR_TTL,
    SUBSCRIBER_TTL,
    authenticate,
    end_session,
    load_session,
    start_session,
)

log = logging.getLogger(__name__)

WINDOW = 15 * 60  # seconds failed logins are remembered
MAX_PER_EMAIL = 5
MAX_PER_ADDRESS = 30


def _safe_next(value: str | None) -> str:
    """Only a path on this server: never an open redirect to another site."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value:
        return "/"
    return value


def _with_cookie(response: Response, svc: Services, token: str, ttl: int) -> Response:
    response.set_cookie(
        COOKIE,
        token,
        max_age=ttl,
        httponly=True,
        samesite="lax",
        secure=svc.settings.public_url.startswith("https://"),
        path="/",
    )
    return response


class Throttle:
    """Failed logins per email and per address, in Redis, for :data:`WINDOW` seconds."""

    def __init__(self, svc: Services, email: str, address: str) -> None:
        ns = svc.settings.namespace
        self._redis = svc.redis
        self._keys = (f"{ns}:login:email:{email}", f"{ns}:login:addr:{address}")

    async def wait(self) -> int:
        """Seconds until another try is allowed (0: now)."""
        try:
            counts = await self._redis.mget(self._keys)
            if int(counts[0] or 0) < MAX_PER_EMAIL and int(counts[1] or 0) < MAX_PER_ADDRESS:
                return 0
            ttls = [int(await self._redis.ttl(k)) for k in self._keys]
        except RedisError as exc:
            log.warning("login throttle unavailable (%s); not counting", exc)
            return 0
        return max(*ttls, 1)

    async def failed(self) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in self._keys:
                    pipe.incr(key)
                    pipe.expire(key, WINDOW, nx=True)
                await pipe.execute()
        except RedisError as exc:
            log.warning("login throttle unavailable (%s); not counting", exc)

    async def succeeded(self) -> None:
        with contextlib.suppress(RedisError):
            await self._redis.delete(self._keys[0])


async def login_page(request: Request) -> Response:
    token = request.cookies.get(COOKIE)
    if token and await load_session(services(request).pool, token) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    return await render(
        request, "login.html", next=_safe_next(request.query_params.get("next")), email=""
    )


async def login(request: Request) -> Response:
    svc = services(request)
    same_origin(request)
    data = await request.form()
    email = str(data.get("email", "")).strip().lower()[:320]
    password = str(data.get("password", ""))[:1024]
    target = _safe_next(str(data.get("next", "")))
    address = request.client.host if request.client else "unknown"
    throttle = Throttle(svc, email, address)
    wait = await throttle.wait()
    if wait:
        minutes = max(1, round(wait / 60))
        return await render(
            request,
            "login.html",
            status_code=429,
            headers={"retry-after": str(wait)},
            next=target,
            email=email,
            error=f"Too many failed attempts. Try again in {minutes} min.",
        )
    found = await authenticate(svc.pool, email, password) if email and password else None
    if found is None:
        await throttle.failed()
        return await render(
            request,
            "login.html",
            status_code=400,
            next=target,
            email=email,
            error="That email and password do not match an operator.",
        )
    await throttle.succeeded()
    old = request.cookies.get(COOKIE)
    if old:
        await end_session(svc.pool, old)  # never carry a session over a login
    tenant_id, user_id = found
    token = await start_session(svc.pool, tenant_id, user_id=user_id)
    response = RedirectResponse(target, status_code=303)
    return _with_cookie(response, svc, token, OPERATOR_TTL)


async def logout(request: Request) -> Response:
    session = await viewer(request)
    await form(request, session)
    token = request.cookies.get(COOKIE)
    if token:
        await end_session(services(request).pool, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


async def portal_page(request: Request) -> Response:
    """What a magic link opens: a button that redeems it (the GET changes nothing)."""
    token = request.query_params.get("token", "")
    return await render(request, "portal_login.html", token=token, error=None)


async def portal_login(request: Request) -> Response:
    svc = services(request)
    same_origin(request)
    data = await request.form()
    token = str(data.get("token", ""))[:200]
    try:
        tenant_id, subscriber_id = await redeem_portal_link(svc.pool, token)
    except NotFound as exc:
        return await render(request, "portal_login.html", status_code=400, token="", error=str(exc))
    old = request.cookies.get(COOKIE)
    if old:
        await end_session(svc.pool, old)
    session = await start_session(svc.pool, tenant_id, subscriber_id=subscriber_id)
    response = RedirectResponse("/", status_code=303, headers=HEADERS)
    return _with_cookie(response, svc, session, SUBSCRIBER_TTL)


routes: list[BaseRoute] = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route(PORTAL_LOGIN_PATH, portal_page, methods=["GET"]),
    Route(PORTAL_LOGIN_PATH, portal_login, methods=["POST"]),
]
