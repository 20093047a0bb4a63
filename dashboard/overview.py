"""The overview: the first page either audience sees after signing in."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from dashboard.web import render, viewer


async def overview(request: Request) -> Response:
    session = await viewer(request)
    return await render(request, "overview.html", session, title="Overview")


routes: list[BaseRoute] = [Route("/", overview, methods=["GET"])]
