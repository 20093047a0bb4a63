"""Signing in and out: operators with email and password, subscribers with a portal link.

Logins are counted in Redis per email and per client address over a quarter of an hour.
A try is counted *before* its password is checked, in one atomic step that also says
whether it is within the limits, so however many arrive at once, at most the limit of them
reach the password check; past the limit the form answers 429 with the wait, whatever the
password. A right password clears the email's count and gives the address its try back.
Redis being down (an error from it) does not lock everyone out: the count is skipped (and
logged). A Redis that is merely slow is waited for: giving up on it after a deadline
would let anyone who can load the server past the limit.

Neither login form has a session to hold a CSRF token, so each has a login token of its
own: the GET of the form sets a random nonce in a short-lived HttpOnly cookie and puts an
HMAC of it (under the secret key, with the time it was made) in a hidden field, and every
POST must bring both, so another site cannot sign a browser in to an account of its
choosing, even from a frame whose Origin is ``null``. Behind https the cookie is
``__Host-`` prefixed, so a sibling subdomain cannot plant one.

A portal link is redeemed on a POST from the page the link opens, never on the GET, so a
mail scanner that prefetches links does not use it up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import RedisError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.web import COOKIE, HEADERS, LOGIN_FORM, form, read_form, render, same_origin, viewer
from hookline.errors import NotFound
from hookline.portal import PORTAL_LOGIN_PATH, redeem_portal_link
from hookline.services import Services, services
from hookline.sessions import (
    OPERATOR_TTL,
    SUBSCRIBER_TTL,
    PasswordChecks,
    authenticate,
    end_session,
    load_session,
    start_session,
)

log = logging.getLogger(__name__)

WINDOW = 15 * 60  # seconds failed logins are remembered
MAX_PER_EMAIL = 5
MAX_PER_ADDRESS = 30
PASSWORD_CHECKS_AT_ONCE = 2  # argon2 runs per process at once (each 64 MiB, 4 threads)

LOGIN_COOKIE = "hookline_login"  # the login token's nonce; "__Host-" first behind https
LOGIN_FIELD = "login_csrf"
LOGIN_TTL = 3600  # seconds a login form stays good to send
_NONCE = re.compile(r"[A-Za-z0-9_-]{32}")
_EXPIRED = "This form has expired or was not sent from this site. Reload the page and try again."

# KEYS: the email's count, the address's count. ARGV: window (s), most per email, most per
# address. When both are under their limits, counts the try in both (the window starts
# at a key's first try) and returns 0; else counts nothing and returns the seconds until
# the fuller key expires. One script, so no two logins can both see the last free try.
_TAKE_TRY = """
local wait = 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('TTL', key)
    if ttl < 0 then
      redis.call('EXPIRE', key, ARGV[1])
      ttl = tonumber(ARGV[1])
    end
    wait = math.max(wait, ttl, 1)
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return 0
"""
# KEYS: the same. The password was right: forget the email's failures, and give the
# address back the try this login took (only while the window that counted it lasts).
_GIVE_BACK = """
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 0
"""


def _safe_next(value: str | None) -> str:
    """Only a path on this server: never an open redirect to another site."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value:
        return "/"
    return value


def _secure(svc: Services) -> bool:
    return svc.settings.public_url.startswith("https://")


def _with_cookie(response: Response, svc: Services, token: str, ttl: int) -> Response:
    response.set_cookie(
        COOKIE,
        token,
        max_age=ttl,
        httponly=True,
        samesite="lax",
        secure=_secure(svc),
        path="/",
    )
    # the login token did its job; the next login form gets a new one
    response.delete_cookie(
        _login_cookie(svc), path="/", secure=_secure(svc), httponly=True, samesite="lax"
    )
    return response


# -- the login token: a CSRF token for the two forms that have no session yet ------------


def _login_cookie(svc: Services) -> str:
    # __Host-: only this host over https may set it (no Domain), so a sibling subdomain
    # cannot plant a nonce of its own; browsers take the prefix only on a Secure cookie
    return ("__Host-" if _secure(svc) else "") + LOGIN_COOKIE


def _login_keys(svc: Services) -> list[bytes]:
    """The current secret key first, then earlier ones (a form made before a rotation)."""
    svc.settings.require("secret_key")
    assert svc.settings.secret_key is not None
    return [k.encode() for k in (svc.settings.secret_key, *svc.settings.previous_secret_keys)]


def _login_mac(key: bytes, issued: int, nonce: str) -> bytes:
    digest = hmac.new(key, f"hookline login form v1|{issued}|{nonce}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=")


def _login_nonce(request: Request, svc: Services) -> str:
    """The browser's nonce if it has one (a second tab keeps the first tab's form good),
    else a new one."""
    found = request.cookies.get(_login_cookie(svc), "")
    return found if _NONCE.fullmatch(found) else secrets.token_urlsafe(24)


def _login_token(svc: Services, nonce: str) -> str:
    """The hidden field: when it was made, and the HMAC of that and the cookie's nonce."""
    issued = int(time.time())
    return f"{issued}.{_login_mac(_login_keys(svc)[0], issued, nonce).decode()}"


def _check_login_token(request: Request, svc: Services, sent: object) -> None:
    """403 unless the posted login token is one this server made, within :data:`LOGIN_TTL`,
    for the nonce in this browser's cookie."""
    nonce = request.cookies.get(_login_cookie(svc), "")
    if not isinstance(sent, str) or not _NONCE.fullmatch(nonce) or len(sent) > 100:
        raise HTTPException(403, _EXPIRED)
    issued_text, _, mac = sent.partition(".")
    if not (issued_text.isascii() and issued_text.isdigit()):
        raise HTTPException(403, _EXPIRED)
    issued, now = int(issued_text), int(time.time())
    if not now - LOGIN_TTL <= issued <= now + 60:
        raise HTTPException(403, _EXPIRED)
    mac_bytes = mac.encode()
    if not any(
        hmac.compare_digest(mac_bytes, _login_mac(key, issued, nonce)) for key in _login_keys(svc)
    ):
        raise HTTPException(403, _EXPIRED)


async def _login_form(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> Response:
    """A login form with a fresh login token in its hidden field, and the cookie to match."""
    svc = services(request)
    nonce = _login_nonce(request, svc)
    response = await render(
        request,
        template,
        status_code=status_code,
        headers=headers,
        login_csrf=_login_token(svc, nonce),
        **context,
    )
    response.set_cookie(
        _login_cookie(svc),
        nonce,
        max_age=LOGIN_TTL,
        httponly=True,
        samesite="lax",
        secure=_secure(svc),
        path="/",
    )
    return response


async def _posted_login_form(request: Request) -> FormData:
    """A login form's fields, from this site (Origin) and with a good login token."""
    same_origin(request)
    data = await read_form(request, LOGIN_FORM)
    _check_login_token(request, services(request), data.get(LOGIN_FIELD))
    return data


class Throttle:
    """Logins per email and per address, in Redis, for :data:`WINDOW` seconds."""

    def __init__(self, svc: Services, email: str, address: str) -> None:
        ns = svc.settings.namespace
        self._take = svc.redis.register_script(_TAKE_TRY)
        self._give = svc.redis.register_script(_GIVE_BACK)
        self._keys = [f"{ns}:login:email:{email}", f"{ns}:login:addr:{address}"]

    async def take(self) -> int:
        """Count this try if it is within the limits and return 0; else count nothing and
        return the seconds until another try is allowed."""
        try:
            wait = await self._take(keys=self._keys, args=[WINDOW, MAX_PER_EMAIL, MAX_PER_ADDRESS])
        except (RedisError, OSError) as exc:
            log.warning("login throttle unavailable (%s); not counting", exc)
            return 0
        return int(wait)

    async def succeeded(self) -> None:
        try:
            await self._give(keys=self._keys)
        except (RedisError, OSError) as exc:
            log.warning("login throttle unavailable (%r); count not given back", exc)


def _password_checks(request: Request) -> PasswordChecks:
    """The app's :class:`PasswordChecks`, made by the first login it serves (so in the event
    loop that serves the app)."""
    state = request.app.state
    checks: PasswordChecks | None = getattr(state, "password_checks", None)
    if checks is None:
        checks = state.password_checks = PasswordChecks(PASSWORD_CHECKS_AT_ONCE)
    return checks


async def login_page(request: Request) -> Response:
    token = request.cookies.get(COOKIE)
    if token and await load_session(services(request).pool, token) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    return await _login_form(
        request, "login.html", next=_safe_next(request.query_params.get("next")), email=""
    )


async def login(request: Request) -> Response:
    svc = services(request)
    data = await _posted_login_form(request)
    email = str(data.get("email", "")).strip().lower()[:320]
    password = str(data.get("password", ""))[:1024]
    target = _safe_next(str(data.get("next", "")))
    address = request.client.host if request.client else "unknown"
    throttle = Throttle(svc, email, address)
    wait = await throttle.take()
    if wait:
        minutes = max(1, round(wait / 60))
        return await _login_form(
            request,
            "login.html",
            status_code=429,
            headers={"retry-after": str(wait)},
            next=target,
            email=email,
            error=f"Too many failed attempts. Try again in {minutes} min.",
        )
    found = None
    if email and password:
        found = await authenticate(svc.pool, _password_checks(request), email, password)
    if found is None:
        return await _login_form(  # the try stays counted
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
    return await _login_form(request, "portal_login.html", token=token, error=None)


async def portal_login(request: Request) -> Response:
    svc = services(request)
    data = await _posted_login_form(request)
    token = str(data.get("token", ""))[:200]
    try:
        tenant_id, subscriber_id = await redeem_portal_link(svc.pool, token)
    except NotFound as exc:
        return await _login_form(
            request, "portal_login.html", status_code=400, token="", error=str(exc)
        )
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
