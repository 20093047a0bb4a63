"""OpenAPI 3.1, generated from the routes themselves.

Every API route is made with :func:`operation`, which records what the route takes and
returns as pydantic models next to the handler. :func:`spec` walks the routes and turns
those models' JSON Schemas into the document served at ``/openapi.json``, so the document
cannot drift from the code.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hookline import __version__

Handler = Callable[[Request], Awaitable[Response]]

_PATH_PARAM = re.compile(r"{([a-z_]+)}")


class Problem(BaseModel):
    """An RFC 9457 problem: every error response has this shape."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None  # None: no body
    status: int = 200
    auth: bool = True
    errors: tuple[int, ...] = (400, 401, 404, 422)
    headers: tuple[str, ...] = ()  # request headers the operation reads, e.g. Idempotency-Key
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ApiRoute(Route):
    """A starlette Route that carries its :class:`Operation` for the OpenAPI document."""

    def __init__(self, op: Operation, handler: Handler) -> None:
        super().__init__(op.path, handler, methods=[op.method])
        self.operation = op


def operation(
    method: str,
    path: str,
    handler: Handler,
    *,
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    auth: bool = True,
    errors: Sequence[int] = (400, 401, 404, 422),
    headers: Sequence[str] = (),
    description: str = "",
) -> ApiRoute:
    """An API route described for OpenAPI; ``description`` defaults to the handler's doc."""
    op = Operation(
        method=method,
        path=path,
        summary=summary,
        tag=tag,
        body=body,
        query=query,
        response=response,
        status=status,
        auth=auth,
        errors=tuple(errors),
        headers=tuple(headers),
        description=description or (handler.__doc__ or "").strip(),
    )
    return ApiRoute(op, handler)


def _models(ops: Iterable[Operation]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"Problem": Problem}
    for op in ops:
        for model in (op.body, op.response):
            if model is not None:
                found[model.__name__] = model
    return list(found.values())


def spec(routes: Iterable[BaseRoute], *, title: str = "hookline API") -> dict[str, Any]:
    ops = [r.operation for r in routes if isinstance(r, ApiRoute)]
    models = _models(ops)
    keyed, components = models_json_schema(
        [(m, "validation") for m in models if m is not None],
        ref_template="#/components/schemas/{model}",
    )
    # the response side of a model can differ from its input side (defaults), but our
    # output models have no defaults that matter, so one schema per model serves both
    refs = {m: keyed[(m, "validation")] for m in models}
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": __version__,
            "description": (
                "Send webhooks: POST events, hookline commits them and delivers signed, "
                "ordered, retried requests to your subscribers' endpoints. Errors are RFC "
                "9457 problem details; lists are `{data, next_cursor}` pages."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components.get("$defs", {}),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "API key"}
            },
        },
    }


def _operation(op: Operation, refs: dict[type[BaseModel], Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = {k: v for k, v in prop.items() if k != "title"}
            parameters.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    for header in op.headers:
        parameters.append(
            {"name": header, "in": "header", "required": False, "schema": {"type": "string"}}
        )
    problem = {"application/problem+json": {"schema": refs[Problem]}}
    responses: dict[str, Any] = {}
    if op.response is not None:
        responses[str(op.status)] = {
            "description": op.summary,
            "content": {"application/json": {"schema": refs[op.response]}},
        }
    else:
        responses[str(op.status)] = {"description": op.summary}
    errors = set(op.errors) | ({401} if op.auth else set()) | {413, 500}
    if op.body is None:
        errors.discard(413)
    for code in sorted(errors):
        responses[str(code)] = {"description": "problem details", "content": problem}
    described: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method.lower()}_{op.path.strip('/').replace('/', '_')}".replace(
            "{", ""
        ).replace("}", ""),
        "tags": [op.tag],
        "parameters": parameters,
        "responses": responses,
    }
    if op.description:
        described["description"] = op.description
    if op.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[op.body]}},
        }
    described["security"] = [{"apiKey": []}] if op.auth else []
    return described
