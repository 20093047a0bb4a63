"""The web app of ``hookline serve``: the API and the dashboard as two apps side by side.

Each has its own routes and its own error handling (problem+json for the API, pages for
the dashboard); a request goes to the API when its path is the API's (``api.app.paths``)
and to the dashboard otherwise. Both read the one :class:`~hookline.services.Services`
built here.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.types import Receive, Scope, Send

from api import app as api_app
from dashboard import app as dashboard_app
from hookline.db import Pool
from hookline.doorbell import Doorbell
from hookline.group_commit import GroupCommit
from hookline.metrics import Metrics
from hookline.rates import IngestRates
from hookline.services import Services
from hookline.settings import Settings
from hookline.vault import Vault


class WebApp:
    """The ASGI app: each request to the API or to the dashboard, by its path."""

    def __init__(self, api: Starlette, pages: Starlette, is_api: Callable[[str], bool]) -> None:
        self.api, self.pages, self._is_api = api, pages, is_api
        self.state = State()  # shared: both apps read their services from it
        api.state = pages.state = self.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self._is_api(scope["path"]):
            await self.api(scope, receive, send)
        else:
            await self.pages(scope, receive, send)


def build_app(
    settings: Settings, pool: Pool, redis: Redis, metrics: Metrics | None = None
) -> WebApp:
    """The API and the dashboard over one set of services."""
    routes = api_app.routes()
    api = Starlette(routes=routes, exception_handlers=api_app.exception_handlers())
    pages = Starlette(
        routes=dashboard_app.routes(), exception_handlers=dashboard_app.exception_handlers()
    )
    app = WebApp(api, pages, api_app.paths(routes))
    doorbell = Doorbell(redis, settings.namespace)
    app.state.services = Services(
        settings,
        pool,
        redis,
        doorbell,
        metrics or Metrics(),
        IngestRates(redis, settings),
        Vault.from_settings(settings),
        GroupCommit(pool, settings.tenant_max_fanout, committed=doorbell.ring),
    )
    api_app.init_state(app.state)
    return app
