"""Request and response plumbing shared by the API's routes."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from api.problems import Refused
from hookline.db import Row

M = TypeVar("M", bound=BaseModel)

MAX_BODY = 1024 * 1024  # bytes; checked before a body is read
MAX_DEPTH = 32  # levels of JSON nesting


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_default)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, refused with 413 past ``limit`` before more of it is read; cached."""
    cached: bytes | None = getattr(request, "_body", None)
    if cached is not None:
        return cached
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise Refused(f"the body is over {limit} bytes; send less at once", status=413)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise Refused(f"the body is over {limit} bytes; send less at once", status=413)
    except ClientDisconnect:
        # gone, or cut off by the server for sending its body too slowly: nobody to answer
        raise HTTPException(400, "the client went away before its body was read") from None
    request._body = bytes(body)
    return request._body


async def read_model(request: Request, model: type[M], limit: int = MAX_BODY) -> M:
    """Parse the body as ``model``, refusing oversized, non-JSON or too deep bodies clearly."""
    body = await read_body(request, limit)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refused(f"the body is not valid JSON: {exc}") from None
    # fewer brackets than levels allowed cannot nest too deep: most bodies skip the walk
    few = body.count(b"{") + body.count(b"[") <= MAX_DEPTH
    if not few and _depth(data) > MAX_DEPTH:
        raise Refused(f"the body nests deeper than {MAX_DEPTH} levels")
    if b"\\u0000" in body:  # the only way JSON spells NUL; most bodies skip the walk
        _refuse_nul(data)
    if _LONG_DIGITS.search(body):  # rare: only then parse exactly to look for huge integers
        _refuse_huge_integers(json.loads(body))
    # strict JSON-mode validation is what the OpenAPI document promises: 0 is not false,
    # "5" is not 5 (lax mode would coerce both); ISO 8601 strings still become datetimes
    return model.model_validate_json(body, strict=True)


_LONG_DIGITS = re.compile(rb"\d{19,}")
_INT64 = (-(2**63), 2**63 - 1)
_HUGE = "integers must fit in 64 bits; send larger numbers as strings"


def _refuse_huge_integers(value: Any) -> None:
    """422 for integers past 64 bits: they cannot be stored in jsonb faithfully by our
    encoder, and most receivers could not read them either."""
    stack: list[tuple[Any, list[str | int]]] = [(value, ["body"])]
    while stack:
        item, loc = stack.pop()
        if isinstance(item, int) and not isinstance(item, bool):
            if not _INT64[0] <= item <= _INT64[1]:
                raise Refused(_HUGE, [{"loc": loc, "msg": _HUGE, "kind": "unstorable"}])
        elif isinstance(item, dict):
            stack.extend((child, [*loc, key]) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, [*loc, i]) for i, child in enumerate(item))


def _refuse_nul(value: Any) -> None:
    """422 for U+0000 in any string or key: Postgres stores it in neither text nor jsonb."""
    stack: list[tuple[Any, list[str | int]]] = [(value, ["body"])]
    while stack:
        item, loc = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            raise Refused(_NUL, [{"loc": loc, "msg": _NUL, "kind": "unstorable"}])
        if isinstance(item, dict):
            for key, child in item.items():
                stack.append((key, loc))
                stack.append((child, [*loc, key]))
        elif isinstance(item, list):
            stack.extend((child, [*loc, i]) for i, child in enumerate(item))


_NUL = "strings may not contain U+0000 (NUL)"


def _depth(value: Any) -> int:
    """How deep JSON nests, without recursion (a hostile body could be 100k levels)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def read_query(request: Request, model: type[M]) -> M:
    """Parse the query string as ``model``; errors are 422 with ``["query", name]`` paths."""
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise Refused(_NUL, [{"loc": ["query", name], "msg": _NUL}])
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise Refused(
            "the query string did not validate; see errors",
            [{"loc": ["query", *e["loc"]], "msg": e["msg"]} for e in exc.errors()],
        ) from None


def page(rows: list[Row], limit: int, shape: Any) -> JSON:
    """A list response: ``{"data": [...], "next_cursor": id-or-null}``."""
    cursor = rows[-1]["id"] if len(rows) == limit else None
    return JSON({"data": [shape(r) for r in rows], "next_cursor": cursor})
