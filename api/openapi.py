"""OpenAPI 3.1, generated from the routes themselves.

Every API route is made with :func:`operation`, which records what the route takes and
returns as pydantic models next to the handler. :func:`spec` walks the routes and turns
those models' JSON Schemas into the document served at ``/openapi.json``, so the document
cannot drift from the code.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.auth import tenant
from api.idempotency import HEADER, HEADER_SCHEMA
from api.idempotency import idempotent as keep_responses
from hookline import __version__
from hookline.errors import NotFound

Handler = Callable[[Request], Awaitable[Response]]

_PATH_PARAM = re.compile(r"{([a-z_]+)}")
_REF = "#/components/schemas/{model}"

# Everything a path names (prefixed ids, uids, event type names, version numbers) is spelled
# with these characters. Anything else names nothing: 404 before any query, where Postgres
# would refuse a NUL with a driver error.
PATH_VALUE = r"^[A-Za-z0-9_.:-]{1,200}$"
_PATH_VALUE = re.compile(PATH_VALUE)


# what the API refuses in every query string value (see api/http.py read_query)
NO_NUL = "^[^\\u0000]*$"


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
    body_required: bool = True  # False: no body at all means the model's defaults
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None  # None: no body
    status: int = 200
    # other successful answers, e.g. a dry run's 200 beside a job's 202: (status, body, what)
    alternatives: tuple[tuple[int, type[BaseModel], str], ...] = ()
    auth: bool = True
    errors: tuple[int, ...] = (400, 401, 404, 422)
    headers: tuple[str, ...] = ()  # request headers the operation reads, e.g. Idempotency-Key
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ApiRoute(Route):
    """A starlette Route that carries its :class:`Operation` for the OpenAPI document."""

    def __init__(self, op: Operation, handler: Handler) -> None:
        if "{" in op.path:
            handler = _named_objects_only(handler)
        if op.auth:
            handler = _identity_first(handler)
        super().__init__(op.path, handler, methods=[op.method])
        self.operation = op


def _identity_first(handler: Handler) -> Handler:
    """Who is asking is settled before anything they sent is judged: a request without a
    valid key gets 401, whatever its path, headers or body hold."""

    @functools.wraps(handler)
    async def identified(request: Request) -> Response:
        await tenant(request)
        return await handler(request)

    return identified


def _named_objects_only(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def checked(request: Request) -> Response:
        for name, value in request.path_params.items():
            if not _PATH_VALUE.fullmatch(value):
                raise NotFound(f"no {name} {value[:100]!r} here")
        return await handler(request)

    return checked


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
    idempotent: bool = False,
    body_required: bool = True,
    alternatives: Sequence[tuple[int, type[BaseModel], str]] = (),
) -> ApiRoute:
    """An API route described for OpenAPI; ``description`` defaults to the handler's doc."""
    if idempotent:
        handler = keep_responses(handler)
        headers = (*headers, HEADER)
        errors = (*errors, 409)
    op = Operation(
        method=method,
        path=path,
        summary=summary,
        tag=tag,
        body=body,
        body_required=body_required,
        query=query,
        response=response,
        status=status,
        alternatives=tuple(alternatives),
        auth=auth,
        errors=tuple(errors),
        headers=tuple(headers),
        # cleandoc: a docstring's indented lines would be Markdown code blocks
        description=description or inspect.cleandoc(handler.__doc__ or ""),
    )
    return ApiRoute(op, handler)


def _models(ops: Iterable[Operation]) -> list[type[BaseModel]]:
    # by the class itself: two modules' models of one name both get a component (pydantic
    # qualifies the names), where keying by name would drop one and fail on its reference
    found: dict[type[BaseModel], None] = {Problem: None}
    for op in ops:
        for model in (op.body, op.response, *(alt[1] for alt in op.alternatives)):
            if model is not None:
                found[model] = None
    return list(found)


def spec(routes: Iterable[BaseRoute], *, title: str = "hookline API") -> dict[str, Any]:
    ops = [r.operation for r in routes if isinstance(r, ApiRoute)]
    models = _models(ops)
    keyed, components = models_json_schema(
        [(m, "validation") for m in models if m is not None], ref_template=_REF
    )
    # the response side of a model can differ from its input side (defaults), but our
    # output models have no defaults that matter, so one schema per model serves both
    refs = {m: keyed[(m, "validation")] for m in models}
    defs: dict[str, Any] = dict(components.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        described = _operation(op, refs, defs)
        links = _links(op, ops)
        if links:
            described["responses"][str(op.status)]["links"] = links
        paths.setdefault(op.path, {})[op.method.lower()] = described
    schemas = {name: {**_published(d), "title": d.get("title", name)} for name, d in defs.items()}
    # in the order the routes come, the service's own health checks last
    tags = sorted(dict.fromkeys(op.tag for op in ops), key=lambda tag: tag == "Operations")
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
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "API key"}
            },
        },
    }


def _operation_id(op: Operation) -> str:
    path = op.path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
    return f"{op.method.lower()}_{path}"


def _links(source: Operation, ops: Iterable[Operation]) -> dict[str, Any]:
    """OpenAPI links from what a POST made to the operations on it: every operation under
    ``source.path/{name}`` whose path names nothing but what the request's path already
    did and fields of the answer (``POST /v1/endpoints`` answers an ``id``, which
    ``GET /v1/endpoints/{id}`` takes). Clients and schemathesis' stateful tests follow
    them."""
    if source.method != "POST" or source.response is None:
        return {}
    fields = {f.alias or name for name, f in source.response.model_fields.items()}
    known = set(_PATH_PARAM.findall(source.path))
    links: dict[str, Any] = {}
    for target in ops:
        if not target.path.startswith(source.path + "/{"):
            continue
        wanted = _PATH_PARAM.findall(target.path)
        if not set(wanted) - known or not set(wanted) <= known | fields:
            continue
        links[_operation_id(target)] = {
            "operationId": _operation_id(target),
            "parameters": {
                name: f"$request.path.{name}" if name in known else f"$response.body#/{name}"
                for name in wanted
            },
        }
    return links


def _query_value(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without pydantic's title and its ``null`` branch: a query
    string cannot say null; leaving the parameter out is how to say it."""
    prop = {k: v for k, v in prop.items() if k != "title"}
    branches = prop.get("anyOf", [])
    kept = [b for b in branches if b != {"type": "null"}]
    if len(kept) == 1 and len(branches) == 2:
        prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **kept[0]}
    if "default" in prop and prop["default"] is None:
        del prop["default"]
    return _declared(prop)


def _published(schema: Any) -> Any:
    """``schema`` as the document shows it: without pydantic's per-field titles (renderers
    print them beside every field's type, "string (Status)"; property names and values that
    are data stay), and with what the server enforces that pydantic does not say
    (:func:`_declared`)."""
    if isinstance(schema, list):
        return [_published(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kept: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("default", "examples", "example", "enum", "const"):
            kept[key] = value
        elif key in ("properties", "patternProperties", "$defs") and isinstance(value, dict):
            kept[key] = {name: _published(sub) for name, sub in value.items()}
        else:
            kept[key] = _published(value)
    return _declared(kept)


def _declared(schema: dict[str, Any]) -> dict[str, Any]:
    """One schema with :data:`NO_NUL` on a string that has no pattern of its own (nor a
    format or a fixed set of values): Postgres stores no NUL in text, so the API refuses one
    in any string (inside free-form data, an event's ``data``, it cannot be declared; there
    the refusal's error has the kind ``unstorable``). And a dict whose keys have a pattern
    (custom headers) closed to other keys: pydantic says only what the matching keys hold,
    and the server refuses the rest."""
    if schema.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(schema):
        schema["pattern"] = NO_NUL
    if "patternProperties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    return schema


def _operation(
    op: Operation, refs: dict[type[BaseModel], Any], defs: dict[str, Any]
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": PATH_VALUE},
        }
        for name in _PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=_REF)
        defs.update(schema.get("$defs", {}))
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": _query_value(prop),
                }
            )
    for header in op.headers:
        schema = HEADER_SCHEMA if header == HEADER else {"type": "string"}
        parameters.append({"name": header, "in": "header", "required": False, "schema": schema})
    problem = {"application/problem+json": {"schema": refs[Problem]}}
    responses: dict[str, Any] = {}
    if op.response is not None:
        responses[str(op.status)] = {
            "description": op.summary,
            "content": {"application/json": {"schema": refs[op.response]}},
        }
    else:
        responses[str(op.status)] = {"description": op.summary}
    for status, model, what in op.alternatives:
        responses[str(status)] = {
            "description": what,
            "content": {"application/json": {"schema": refs[model]}},
        }
    errors = set(op.errors) | ({401} if op.auth else set()) | {413, 500}
    if op.body is None:
        errors.discard(413)
    if op.body is not None or op.query is not None:
        errors.add(422)  # read_model and read_query refuse what does not validate
    if "{" in op.path:
        errors.add(404)  # a path that names nothing, or another tenant's object
    for code in sorted(errors):
        responses[str(code)] = {"description": "problem details", "content": problem}
    described: dict[str, Any] = {
        "summary": op.summary,
        "operationId": _operation_id(op),
        "tags": [op.tag],
        "parameters": parameters,
        "responses": responses,
    }
    if op.description:
        described["description"] = op.description
    if op.body is not None:
        described["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": refs[op.body]}},
        }
    described["security"] = [{"apiKey": []}] if op.auth else []
    return described
