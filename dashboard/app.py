"""The dashboard: operator pages and the subscriber portal (one Jinja app, two audiences),
and the API reference at ``/docs``, rendered in the browser from ``/openapi.json`` by
vendored Redoc. Each page module has its ``routes``; this one puts them together."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from dashboard import (
    auth,
    deliveries,
    endpoint_actions,
    endpoints,
    event_types,
    events,
    overview,
    replays,
)
from dashboard.web import SignedOut, error_page, signed_out
from hookline.errors import HooklineError
from hookline.http_errors import retry_headers, status_of

log = logging.getLogger(__name__)
_HERE = Path(__file__).resolve().parent
_templates = Environment(
    loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(), enable_async=True
)


# the vendored renderer: dashboard/static/vendor/README.md says where it comes from
REDOC = "redoc-2.5.4"

# The reference page talks to this server only. Redoc's sidebar asks for its logo from a CDN;
# the policy stops that request before it leaves the browser (the image then hides itself).
# styled-components injects <style> elements, hence 'unsafe-inline' for styles only.
DOCS_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


async def docs(request: Request) -> Response:
    """The API reference: Redoc rendering ``/openapi.json``, from vendored assets only."""
    page = await _templates.get_template("docs.html").render_async(
        spec_url="/openapi.json", redoc=REDOC
    )
    return HTMLResponse(page, headers={"content-security-policy": DOCS_POLICY})


def routes() -> list[BaseRoute]:
    return [
        *auth.routes,
        *overview.routes,
        *events.routes,
        *event_types.routes,
        *endpoints.routes,
        *endpoint_actions.routes,
        *deliveries.routes,
        *replays.routes,
        Route("/docs", docs, methods=["GET"]),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]


Handler = Callable[[Request, Exception], Awaitable[Response]]


def exception_handlers() -> dict[Any, Handler]:
    """Every error of a page as a page; a signed-out visitor is sent to the login form."""

    async def on_domain(request: Request, exc: Exception) -> Response:
        # a kernel error no page handler turned into a form message (a quota, say)
        assert isinstance(exc, HooklineError)
        answer = HTTPException(status_of(exc), exc.detail, retry_headers(exc))
        return await error_page(request, answer)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("page %s failed", request.url.path, exc_info=exc)
        return await error_page(
            request, HTTPException(500, "Something went wrong on our side; it has been logged.")
        )

    return {
        SignedOut: signed_out,
        HTTPException: error_page,
        HooklineError: on_domain,
        Exception: on_crash,
    }
