"""The dashboard: operator pages and the subscriber portal (a first page for now), and the
API reference at ``/docs``, rendered in the browser from ``/openapi.json`` by vendored Redoc."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hookline import __version__

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


async def home(request: Request) -> Response:
    page = await _templates.get_template("home.html").render_async(version=__version__)
    return HTMLResponse(page)


async def docs(request: Request) -> Response:
    """The API reference: Redoc rendering ``/openapi.json``, from vendored assets only."""
    page = await _templates.get_template("docs.html").render_async(
        spec_url="/openapi.json", redoc=REDOC
    )
    return HTMLResponse(page, headers={"content-security-policy": DOCS_POLICY})


def routes() -> list[BaseRoute]:
    return [
        Route("/", home, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
