"""Request and response plumbing shared by the API's routes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from hookline.db import Pool, Row
from hookline.doorbell import Doorbell
from hookline.errors import HooklineError, InvalidInput
from hookline.settings import Settings

M = TypeVar("M", bound=BaseModel)

MAX_BODY = 1024 * 1024  # bytes; checked before a body is read


class PayloadTooLarge(HooklineError):
    status = 413
    title = "Content too large"


@dataclass(frozen=True)
class Services:
    """What routes need, built by the composition root (the CLI) and put on app.state."""

    settings: Settings
    pool: Pool
    redis: Redis
    doorbell: Doorbell


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_default)


async def read_model(request: Request, model: type[M]) -> M:
    """Parse the body as ``model``, refusing oversized or non-JSON bodies clearly."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise PayloadTooLarge(f"the body is over {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise PayloadTooLarge(f"the body is over {MAX_BODY} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    return model.model_validate(data)


def read_query(request: Request, model: type[M]) -> M:
    """Parse the query string as ``model``; errors are 422 with ``["query", name]`` paths."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise InvalidInput(
            "the query string did not validate; see errors",
            errors=[{"loc": ["query", *e["loc"]], "msg": e["msg"]} for e in exc.errors()],
        ) from None


def page(rows: list[Row], limit: int, shape: Any) -> JSON:
    """A list response: ``{"data": [...], "next_cursor": id-or-null}``."""
    cursor = rows[-1]["id"] if len(rows) == limit else None
    return JSON({"data": [shape(r) for r in rows], "next_cursor": cursor})
