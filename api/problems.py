"""RFC 9457 problem details: the one shape every API error leaves in, made in one place."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from hookline.errors import HooklineError
from hookline.http_errors import retry_headers, status_of

log = logging.getLogger(__name__)

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal server error",
}


def problem(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


def validation_errors(exc: ValidationError, where: str = "body") -> list[dict[str, Any]]:
    return [{"loc": [where, *error["loc"]], "msg": error["msg"]} for error in exc.errors()]


class Refused(Exception):
    """The API's own refusal of a request's shape (a query string, a header, the JSON
    itself), with ``loc`` paths that name where in the request: ``["query", name]``."""

    def __init__(
        self, detail: str, errors: list[dict[str, Any]] | None = None, status: int = 422
    ) -> None:
        super().__init__(detail)
        self.detail, self.errors, self.status = detail, errors, status


def kernel_problem(exc: HooklineError) -> Response:
    """A kernel error as problem details: its status by its class, each of its problems
    under ``body`` (kernel paths are into what the request sent) with its ``kind``: these
    refuse what the input means (an unknown subscriber, a private address), where errors
    without a kind refuse its shape, which the OpenAPI document declares."""
    errors = [
        {"loc": ["body", *p.at], "msg": p.said(), "kind": p.kind} for p in exc.problems
    ] or None
    return problem(status_of(exc), exc.detail, errors=errors, headers=retry_headers(exc))


def refused_problem(exc: Refused) -> Response:
    return problem(exc.status, exc.detail, errors=exc.errors)


async def on_hookline_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HooklineError)
    return kernel_problem(exc)


async def on_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return refused_problem(exc)


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return problem(422, "the request did not validate; see errors", errors=validation_errors(exc))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        # ours replaces Starlette's, which names only the method of the route that answered
        headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
        headers["allow"] = allowed_methods(request)
    return problem(exc.status_code, exc.detail, headers=headers or None)


def allowed_methods(request: Request) -> str:
    """Every method some route takes at this path. Each operation is a route of its own,
    so the route that answered 405 knows only its own method. A path that is a route's
    own, parameter-free path (``/v1/events/batch``) is that resource alone, as the API
    document says, not also a value of a parameter (``/v1/events/{id}``)."""
    matching = [
        route
        for route in request.app.router.routes
        if isinstance(route, Route)
        and route.methods
        and route.matches(request.scope)[0] is not Match.NONE
    ]
    exact = [route for route in matching if route.path == request.url.path]
    methods: set[str] = set()
    for route in exact or matching:
        methods |= route.methods or set()
    return ", ".join(sorted(methods))


# The database is down or restarting: nothing was accepted, and trying again shortly is
# right, so a producer gets 503 with Retry-After rather than a 500 and a trace in our log.
_UNAVAILABLE = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
)


async def on_crash(request: Request, exc: Exception) -> Response:
    if isinstance(exc, _UNAVAILABLE):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return problem(
            503,
            "the database is unavailable; nothing was accepted, try again shortly",
            headers={"retry-after": "1"},
        )
    # the trace goes to the log, never to the caller
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "something went wrong on our side; it has been logged")


HANDLERS: dict[Any, Any] = {
    HooklineError: on_hookline_error,
    Refused: on_refused,
    ValidationError: on_validation_error,
    HTTPException: on_http_error,
    Exception: on_crash,
}
