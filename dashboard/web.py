"""Plumbing every dashboard page shares: templates, who is looking, CSRF, headers.

Pages are server-rendered Jinja with autoescaping on (anything from a payload or a
response shows as text). A page handler asks :func:`viewer` for the session, which sends
a signed-out visitor to ``/login``; a form handler asks :func:`form` for the posted
fields, which refuses a request without the session's CSRF token (sent as a hidden
``csrf`` field, or as the ``x-csrf-token`` header htmx adds to every request).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from redis.asyncio import Redis
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from hookline import __version__
from hookline.db import Pool
from hookline.doorbell import Doorbell
from hookline.sessions import Session, load_session
from hookline.settings import Settings

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
COOKIE = "hookline_session"
HTMX = "htmx-2.0.11"  # dashboard/static/vendor/README.md says where it comes from

# Pages load scripts, styles and images from this server only; no inline script at all.
POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "content-security-policy": POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class Services(Protocol):
    """What the composition root puts on ``app.state.services`` that pages use."""

    settings: Settings
    pool: Pool
    redis: Redis
    doorbell: Doorbell


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def ring(request: Request) -> None:
    """Wake the delivery workers now (after a retry, a resume, a test send), as the API
    does; without it they find the work at their next sweep."""
    services(request).doorbell.ring()


class SignedOut(HTTPException):
    """No live session: :func:`signed_out` sends the visitor to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(303)
        self.next_path = next_path


async def signed_out(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignedOut)
    target = "/login"
    if exc.next_path not in ("", "/"):
        target += "?next=" + quote(exc.next_path, safe="/")
    if request.headers.get("hx-request"):
        # htmx follows redirects inside the fragment; tell it to load the page instead
        return Response(status_code=204, headers={"hx-redirect": target})
    return RedirectResponse(target, status_code=303)


async def viewer(request: Request) -> Session:
    """The session of the person looking, or :class:`SignedOut`."""
    cached: Session | None = getattr(request.state, "session", None)
    if cached is not None:
        return cached
    token = request.cookies.get(COOKIE)
    session = await load_session(services(request).pool, token) if token else None
    if session is None:
        raise SignedOut(request.url.path)
    request.state.session = session
    return session


def same_origin(request: Request) -> None:
    """Refuse a POST a browser says came from another site (403), on top of SameSite
    cookies and CSRF tokens; this also covers the login forms, which have no session."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = urlsplit(origin).netloc
        if host != request.headers.get("host", ""):
            raise HTTPException(403, "This form was sent from another site.")


async def form(request: Request, session: Session) -> FormData:
    """The posted form, once its CSRF token is the session's (else 403)."""
    same_origin(request)
    data = await request.form()
    sent = request.headers.get("x-csrf-token") or data.get("csrf")
    if not session.csrf_ok(sent if isinstance(sent, str) else None):
        raise HTTPException(403, "This form has expired. Reload the page and try again.")
    return data


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ago(value: datetime | None) -> str:
    if value is None:
        return "-"
    seconds = (datetime.now(UTC) - value).total_seconds()
    span = f"{abs(seconds):.0f} s"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if abs(seconds) >= size:
            span = f"{abs(seconds) // size:.0f} {unit}"
            break
    return f"in {span}" if seconds < 0 else f"{span} ago"


def _number(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    enable_async=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["when"] = _when
templates.filters["ago"] = _ago
templates.filters["number"] = _number
templates.globals["version"] = __version__
templates.globals["htmx"] = HTMX


async def render(
    request: Request,
    template: str,
    session: Session | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page (or an htmx fragment) with the security headers every page carries."""
    page = await templates.get_template(template).render_async(
        request=request, session=session, path=request.url.path, **context
    )
    return HTMLResponse(page, status_code=status_code, headers={**HEADERS, **(headers or {})})


async def error_page(request: Request, exc: Exception) -> Response:
    """Dashboard errors as pages in the same frame (the API answers problem+json)."""
    assert isinstance(exc, HTTPException)
    session: Session | None = getattr(request.state, "session", None)
    titles = {403: "Not allowed", 404: "Not found", 429: "Slow down"}
    return await render(
        request,
        "error.html",
        session,
        status_code=exc.status_code,
        title=titles.get(exc.status_code, "Something went wrong"),
        detail=exc.detail,
        headers=exc.headers,
    )
