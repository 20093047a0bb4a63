"""``Idempotency-Key`` on POSTs that create something.

The first request with a key runs and its response (status and body) is kept for 24
hours; a retry with the same key and the same request gets that response again, marked
``idempotent-replayed: true``; the same key with another request is a 409. Requests racing
on one key wait for the first to finish, then all get its response. Responses of 5xx and
crashes are not kept, so a retry after a failure on our side runs again.

Known gap: if the process dies after the handler committed but before the response is
kept, the unfinished key is taken over after ``_ABANDONED`` seconds and the request runs
again; a producer event ``id`` is the guard against that double.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant
from api.http import read_body
from api.problems import Refused, kernel_problem, problem, refused_problem, validation_errors
from hookline.db import QUERIES
from hookline.errors import Conflict, HooklineError
from hookline.services import services

Handler = Callable[[Request], Awaitable[Response]]

HEADER = "Idempotency-Key"
KEY_LENGTH = (1, 255)
#: The header as the OpenAPI document declares it.
HEADER_SCHEMA = {"type": "string", "minLength": KEY_LENGTH[0], "maxLength": KEY_LENGTH[1]}
_ABANDONED = 60.0  # seconds after which an unfinished key's request is taken for dead
_WAIT = 30.0  # longest a racing request waits for the first one


def idempotent(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return await handler(request)
        low, high = KEY_LENGTH
        if not low <= len(key) <= high:
            raise Refused(
                f"{HEADER} is {low} to {high} characters",
                [{"loc": ["header", HEADER], "msg": f"{low} to {high} characters"}],
            )
        owner = await tenant(request)
        body = await read_body(request)
        route = f"{request.method} {request.url.path}"
        digest = hashlib.sha256(route.encode() + b"\n" + body).digest()
        pool = services(request).pool
        mine = await pool.fetchval(
            QUERIES["claim_idempotency_key"], owner.id, key, route, digest, _ABANDONED
        )
        if not mine:
            return await _replay(request, owner.id, key, digest)
        try:
            response = await _responding(handler, request)
        except BaseException:
            await pool.execute(QUERIES["release_idempotency_key"], owner.id, key)
            raise
        if response.status_code >= 500:
            await pool.execute(QUERIES["release_idempotency_key"], owner.id, key)
        else:
            await pool.execute(
                QUERIES["finish_idempotency_key"],
                owner.id,
                key,
                response.status_code,
                bytes(response.body),
            )
        return response

    run.__doc__ = handler.__doc__
    return run


async def _responding(handler: Handler, request: Request) -> Response:
    """The handler's response, with expected errors turned into their problem responses
    (so a 4xx is kept and replayed like any other answer)."""
    try:
        return await handler(request)
    except HooklineError as exc:
        return kernel_problem(exc)
    except Refused as exc:
        return refused_problem(exc)
    except ValidationError as exc:
        return problem(
            422, "the request did not validate; see errors", errors=validation_errors(exc)
        )
    except HTTPException as exc:
        return problem(exc.status_code, exc.detail)


async def _replay(request: Request, tenant_id: str, key: str, digest: bytes) -> Response:
    pool = services(request).pool
    deadline = time.monotonic() + _WAIT
    while True:
        held = await pool.fetchrow(QUERIES["get_idempotency_key"], tenant_id, key)
        if held is None:
            # the first request failed on our side and let go of the key: run after all
            return await _run_again(request)
        if held["request_hash"] != digest:
            raise Conflict(f"this {HEADER} was used with a different request; use a new key for it")
        if held["status"] is not None:
            status: int = held["status"]
            return Response(
                held["response"],
                status_code=status,
                media_type="application/problem+json" if status >= 400 else "application/json",
                headers={"idempotent-replayed": "true"},
            )
        if time.monotonic() > deadline:
            raise Conflict(f"a request with this {HEADER} is still running; retry later")
        # the first request is still running: look again shortly, within the deadline
        await asyncio.sleep(0.02)


async def _run_again(request: Request) -> Response:
    """Through the route's endpoint, which is the idempotent wrapper: claim the key anew."""
    endpoint: Handler = request.scope["endpoint"]
    return await endpoint(request)
