"""The API's routes and error handling, for the composition root to serve."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api import deliveries, endpoints, events, subscribers
from api.auth import KeyCache
from api.http import JSON, services
from api.problems import HANDLERS


async def healthz(request: Request) -> Response:
    """Alive: the process answers. Says nothing about its dependencies."""
    return JSON({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready: Postgres and Redis both answer within a second."""
    svc = services(request)
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(1):
            await svc.pool.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:  # any failure at all means "not ready"
        checks["postgres"] = f"unreachable: {type(exc).__name__}"
    try:
        async with asyncio.timeout(1):
            await svc.redis.ping()
        checks["redis"] = "ok"
    except (RedisError, OSError, TimeoutError) as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSON(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *events.routes,
        *subscribers.routes,
        *endpoints.routes,
        *deliveries.routes,
    ]


def exception_handlers() -> dict[Any, Any]:
    return dict(HANDLERS)


def init_state(state: Any) -> None:
    """Per-app state the API keeps beside the services (the API key cache)."""
    state.key_cache = KeyCache()
