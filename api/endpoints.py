"""Endpoints: where a subscriber's webhooks go, their signing secrets, and test sends."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant
from api.endpoint_models import (
    EndpointIn,
    EndpointOut,
    EndpointPatch,
    EndpointsQuery,
    ExampleEventIn,
    ExampleEventSent,
    SecretOut,
    SecretRotateIn,
)
from api.http import JSON, page, read_model, read_query
from api.openapi import operation
from api.schemas import Page
from hookline import endpoints as kernel
from hookline.db import Row
from hookline.endpoint_secrets import rotate_secret as kernel_rotate
from hookline.endpoint_secrets import signing_keys
from hookline.services import services
from hookline.vault import shown_headers

M = TypeVar("M", bound=BaseModel)

_FIELDS = (
    "id",
    "subscriber",
    "url",
    "description",
    "event_types",
    "ordering",
    "on_exhausted",
    "payload",
    "format",
    "timeout",
    "rate_limit",
    "max_in_flight",
    "schema_version",
    "retry_schedule",
    "disable_after",
    "sensitive_headers",
    "status",
    "status_reason",
    "signature",
    "created_at",
    "updated_at",
)


def endpoint_shape(row: Row) -> dict[str, Any]:
    shaped = {field: row[field] for field in _FIELDS}
    shaped["headers"] = shown_headers(orjson.loads(row["headers"]))
    shaped["health"] = {
        "consecutive_failures": row["consecutive_failures"],
        "failing_since": row["failing_since"],
        "disabled_at": row["disabled_at"],
        "warning": row["health_warning"],
    }
    return shaped


async def _read_optional(request: Request, model: type[M]) -> M:
    """The body as ``model``, or the model's defaults when there is no body at all."""
    no_body = "transfer-encoding" not in request.headers and request.headers.get(
        "content-length", "0"
    ) in ("", "0")
    return model() if no_body else await read_model(request, model)


async def create(request: Request) -> Response:
    """Register an endpoint for a subscriber; its URL is checked against SSRF."""
    owner = await tenant(request)
    body = await read_model(request, EndpointIn)
    svc = services(request)
    created = await kernel.create_endpoint(
        svc.pool,
        owner.id,
        svc.settings.allowed_networks,
        body.model_dump(),
        quota=svc.settings.tenant_max_endpoints,
        vault=svc.vault,
    )
    return JSON(endpoint_shape(created), status_code=201)


async def index(request: Request) -> Response:
    owner = await tenant(request)
    query = read_query(request, EndpointsQuery)
    rows = await kernel.list_endpoints(
        services(request).pool, owner.id, query.subscriber, query.cursor, query.limit
    )
    return page(rows, query.limit, endpoint_shape)


async def read(request: Request) -> Response:
    owner = await tenant(request)
    found = await kernel.get_endpoint(services(request).pool, owner.id, request.path_params["id"])
    return JSON(endpoint_shape(found))


async def update(request: Request) -> Response:
    """Change some fields; those left out stay. A new URL is checked against SSRF.

    `{"status": "paused"}` stops sending (an attempt in flight finishes); `{"status":
    "active"}` resumes a paused or disabled endpoint and sends what waited, in order.
    Re-enabling a disabled endpoint starts its health afresh and answers with a
    `replay_offer`: the window of events it missed and where to replay them.
    A new `ordering` applies to events ingested from then on; deliveries already pending
    drain in their old lanes first.
    """
    owner = await tenant(request)
    changes = (await read_model(request, EndpointPatch)).model_dump(exclude_unset=True)
    svc = services(request)
    updated = await kernel.update_endpoint(
        svc.pool,
        owner.id,
        request.path_params["id"],
        svc.settings.allowed_networks,
        changes,
        vault=svc.vault,
    )
    if changes.get("status") == "active":
        svc.doorbell.ring()
    shaped = endpoint_shape(updated)
    window = kernel.missed_window(updated)
    if window is not None:
        shaped["replay_offer"] = {
            "since": window[0],
            "until": window[1],
            "replay": f"/v1/endpoints/{updated['id']}/replay",
        }
    return JSON(shaped)


async def delete(request: Request) -> Response:
    """Delete the endpoint with its secrets and deliveries. None of its pending deliveries
    is sent after this answers: it waits for requests in flight to the endpoint to end."""
    owner = await tenant(request)
    await kernel.delete_endpoint(services(request).pool, owner.id, request.path_params["id"])
    return Response(status_code=204)


async def secret(request: Request) -> Response:
    """The key the subscriber verifies signatures with: the `whsec_` secret of an `hmac`
    endpoint, or the `whpk_` public key of an `ed25519` one (its private key never leaves
    hookline); `public_keys` lists every ed25519 public key still signing."""
    owner = await tenant(request)
    svc = services(request)
    keys = await signing_keys(svc.pool, owner.id, request.path_params["id"], vault=svc.vault)
    return JSON(keys)


async def rotate_secret(request: Request) -> Response:
    """Make a new signing secret current (the given `key`, or a random secret or keypair of
    the `signature` kind, by default the current one's) and return the keys as
    `GET .../secret` does. `{"signature": "ed25519"}` switches an endpoint to ed25519,
    `{"signature": "hmac"}` back.

    The replaced secret keeps signing beside the new one for the grace period
    (`HOOKLINE_SECRET_ROTATION_GRACE`, 24 h by default): each delivery meanwhile carries one
    signature per valid secret, so the receiver can switch at its own pace. At most 10
    replaced secrets are kept; the oldest go first.
    """
    owner = await tenant(request)
    body = await _read_optional(request, SecretRotateIn)
    svc = services(request)
    keys = await kernel_rotate(
        svc.pool,
        owner.id,
        request.path_params["id"],
        svc.settings.secret_rotation_grace,
        body.key,
        body.signature,
        vault=svc.vault,
    )
    return JSON(keys)


async def send_test(request: Request) -> Response:
    """Send a signed example event of a type to this endpoint only.

    It is a real event addressed to the endpoint's subscriber, delivered like any other;
    follow it with `GET /v1/deliveries/{delivery_id}`.
    """
    owner = await tenant(request)
    body = await read_model(request, ExampleEventIn)
    svc = services(request)
    await svc.rates.admit(owner.id, 1)  # a test event is an event like any other
    event_id, delivery_id = await kernel.send_test_event(
        svc.pool, owner.id, request.path_params["id"], body.type, body.data
    )
    svc.doorbell.ring()
    svc.rates.charge(owner.id, 1)
    return JSON({"event_id": event_id, "delivery_id": delivery_id}, status_code=202)


TAG = "Endpoints"
routes = [
    operation(
        "POST",
        "/v1/endpoints",
        create,
        summary="Register an endpoint",
        tag=TAG,
        body=EndpointIn,
        response=EndpointOut,
        status=201,
        errors=(400, 422),
        idempotent=True,
    ),
    operation(
        "GET",
        "/v1/endpoints",
        index,
        summary="List endpoints",
        tag=TAG,
        query=EndpointsQuery,
        response=Page[EndpointOut],
        errors=(422,),
    ),
    operation(
        "GET",
        "/v1/endpoints/{id}",
        read,
        summary="Get an endpoint",
        tag=TAG,
        response=EndpointOut,
        errors=(404,),
    ),
    operation(
        "PATCH",
        "/v1/endpoints/{id}",
        update,
        summary="Change an endpoint, pause or resume it",
        tag=TAG,
        body=EndpointPatch,
        response=EndpointOut,
        errors=(400, 404, 422),
    ),
    operation(
        "DELETE",
        "/v1/endpoints/{id}",
        delete,
        summary="Delete an endpoint",
        tag=TAG,
        status=204,
        errors=(404, 409),
    ),
    operation(
        "GET",
        "/v1/endpoints/{id}/secret",
        secret,
        summary="Reveal the signing secret or public key",
        tag=TAG,
        response=SecretOut,
        errors=(404,),
    ),
    operation(
        "POST",
        "/v1/endpoints/{id}/secret/rotate",
        rotate_secret,
        summary="Rotate the signing secret",
        tag=TAG,
        body=SecretRotateIn,
        body_required=False,
        response=SecretOut,
        errors=(400, 404, 422),
    ),
    operation(
        "POST",
        "/v1/endpoints/{id}/test",
        send_test,
        summary="Send a test event to this endpoint",
        tag=TAG,
        body=ExampleEventIn,
        response=ExampleEventSent,
        status=202,
        errors=(400, 404, 409, 422, 429),
        idempotent=True,
    ),
]
