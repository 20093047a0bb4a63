"""The dashboard: operator pages and the subscriber portal (a first page for now)."""

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


async def home(request: Request) -> Response:
    page = await _templates.get_template("home.html").render_async(version=__version__)
    return HTMLResponse(page)


def routes() -> list[BaseRoute]:
    return [
        Route("/", home, methods=["GET"]),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
