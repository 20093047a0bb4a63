"""Plumbing every dashboard page shares: templates, who is looking, CSRF, headers.

Pages are server-rendered Jinja with autoescaping on (anything from a payload or a
response shows as text). A page handler asks :func:`viewer` for the session, which sends
a signed-out visitor to ``/login``; a form handler asks :func:`form` for the posted
fields, which refuses a request without the session's CSRF token (sent as a hidden
``csrf`` field, or as the ``x-csrf-token`` header htmx adds to every request).

Every posted form is read through :func:`read_form`, which refuses a body larger than
the biggest form of its kind (413) before parsing any of it, however it is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from hookline import __version__
from hookline.services import services
from hookline.sessions import Session, load_session

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
    cookies and tokens. A missing or ``null`` Origin says nothing either way (a sandboxed
    frame, a redirect, an old browser send one), so it passes here, and a token is what
    must prove the form came from our page: the session's CSRF token (:func:`form`), or
    the login token of the two forms that have no session yet (``dashboard.auth``)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = urlsplit(origin).netloc
        if host != request.headers.get("host", ""):
            raise HTTPException(403, "This form was sent from another site.")


@dataclass(frozen=True)
class FormLimits:
    """How much of a posted form is read: bytes of the whole body (over them: 413 before
    any parsing), fields, and bytes of one field as sent (percent-encoded)."""

    max_bytes: int
    max_fields: int
    max_field_bytes: int


# The forms behind a session, sized by the largest: the endpoint form at the limits it
# accepts (dashboard/endpoint_form.py), percent-encoded as a browser sends it. 500 checked
# event types of 200 characters (a ':' is sent as %3A, so up to 613 bytes each with its
# name) make 306.5 KB; a description of 1,000 characters, 12 KB (4-byte UTF-8, each byte
# as %XX); the URL, 6 KB; the rest, under 1 KB: some 326 KB in all. The catalog offers up
# to 1,000 types (HOOKLINE_TENANT_MAX_EVENT_TYPES) as checkboxes, so up to 1,100 fields are
# read, and picking more than 500 gets the form's own message rather than this refusal.
# Only a signed-in viewer gets this far (:func:`form` takes the session).
PAGE_FORM = FormLimits(max_bytes=384 * 1024, max_fields=1100, max_field_bytes=16 * 1024)
# The two forms anyone may post (sign in, open the portal): four short fields at most.
# The password is read up to 1,024 characters (12 KB at the most percent-encoded).
LOGIN_FORM = FormLimits(max_bytes=16 * 1024, max_fields=8, max_field_bytes=13 * 1024)


async def read_form(request: Request, limits: FormLimits = PAGE_FORM) -> FormData:
    """The posted fields within ``limits``: a body over ``limits.max_bytes`` is refused
    with 413 before parsing, by its Content-Length or, sent without one (chunked), as soon
    as that many bytes have come in; the rest of it is never read. Too many fields, a field
    too large, or any file: 400 saying which."""
    too_large = HTTPException(
        413, f"This form is larger than the {limits.max_bytes // 1024} KiB this page accepts."
    )
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > limits.max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.max_bytes:
            raise too_large
    request._body = bytes(body)  # what the parser reads, instead of the spent stream
    return await request.form(
        max_files=0, max_fields=limits.max_fields, max_part_size=limits.max_field_bytes
    )


async def form(request: Request, session: Session) -> FormData:
    """The posted form, once its CSRF token is the session's (else 403)."""
    same_origin(request)
    data = await read_form(request)
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
    titles = {
        400: "Not understood",
        403: "Not allowed",
        404: "Not found",
        413: "Too large",
        429: "Slow down",
    }
    return await render(
        request,
        "error.html",
        session,
        status_code=exc.status_code,
        title=titles.get(exc.status_code, "Something went wrong"),
        detail=exc.detail,
        headers=exc.headers,
    )
