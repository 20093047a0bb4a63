"""The API's routes and error handling, for the composition root to serve."""

from __future__ import annotations

import asyncio
import functools
import hmac
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api import deliveries, endpoints, event_types, events, replays, settings, subscribers
from api.auth import KeyCache
from api.http import JSON
from api.openapi import operation, spec
from api.problems import HANDLERS
from api.schemas import Health
from hookline.db import QUERIES
from hookline.services import services


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


def _api_routes() -> list[BaseRoute]:
    return [
        operation(
            "GET",
            "/healthz",
            healthz,
            summary="Liveness",
            tag="Operations",
            auth=False,
            response=Health,
            errors=(),
        ),
        operation(
            "GET",
            "/readyz",
            readyz,
            summary="Readiness: Postgres and Redis answer",
            tag="Operations",
            auth=False,
            response=Health,
            errors=(503,),
        ),
        *events.routes,
        *subscribers.routes,
        *endpoints.routes,
        *deliveries.routes,
        *replays.routes,
        *event_types.routes,
        *settings.routes,
    ]


async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process, plus gauges read from Postgres now.

    Wants ``HOOKLINE_METRICS_TOKEN`` as a Bearer token; without a token configured it
    answers 401 unless ``HOOKLINE_METRICS_PUBLIC=true`` opens it on purpose (the counters
    tell how much each tenant's endpoints receive).
    """
    svc = services(request)
    token = svc.settings.metrics_token
    if token:
        if not hmac.compare_digest(
            request.headers.get("authorization", "").encode(), f"Bearer {token}".encode()
        ):
            raise HTTPException(401, "send the metrics token as `Authorization: Bearer <token>`")
    elif not svc.settings.metrics_public:
        raise HTTPException(
            401,
            "set HOOKLINE_METRICS_TOKEN and send it as `Authorization: Bearer <token>`, or "
            "open /metrics to anyone who can reach it with HOOKLINE_METRICS_PUBLIC=true",
        )
    gauges = await svc.pool.fetchrow(QUERIES["metrics_gauges"])
    assert gauges is not None
    svc.metrics.due_lanes.set(gauges["due_lanes"])
    svc.metrics.due_oldest.set(gauges["due_oldest"])
    svc.metrics.dead_letters.set(gauges["dead_letters"])
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def openapi_json(request: Request) -> Response:
    """The OpenAPI 3.1 document of this API, built from the routes at start."""
    document: bytes = request.app.state.openapi
    return Response(document, media_type="application/json")


def routes() -> list[BaseRoute]:
    return [
        *_api_routes(),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def exception_handlers() -> dict[Any, Any]:
    return dict(HANDLERS)


#: Every path under it is the API's (an unknown one is a problem+json 404, not a page).
PREFIX = "/v1"


def paths(routes: Sequence[BaseRoute]) -> Callable[[str], bool]:
    """Whether a path is the API's to answer: anything under :data:`PREFIX`, and the
    routes it has outside it (``/openapi.json``, ``/metrics``, the health checks)."""
    exact = frozenset(str(getattr(route, "path", "")) for route in routes)
    return lambda path: path == PREFIX or path.startswith(PREFIX + "/") or path in exact


@functools.cache
def document() -> bytes:
    """The OpenAPI document, encoded: a function of the code alone (~100 ms to build), so
    made once per process however many apps it runs."""
    return orjson.dumps(spec(_api_routes()))


def init_state(state: Any) -> None:
    """Per-app state the API keeps beside the services: the key cache, the document."""
    state.key_cache = KeyCache()
    state.openapi = document()
