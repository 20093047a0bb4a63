"""Replays: re-send deliveries in bulk by filter, a dry-run count first, then a job."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant
from api.http import JSON, page, read_model, read_query
from api.openapi import ApiRoute, Handler, operation
from api.schemas import ListQuery, Moment, Page, Strict
from hookline import replays as kernel
from hookline.db import Row
from hookline.errors import UNKNOWN, InvalidInput, NotFound, Problem
from hookline.fields import IdRef
from hookline.services import services

M = TypeVar("M", bound=BaseModel)

State = Literal["running", "paused", "cancelled", "done"]


class ReplayIn(Strict):
    types: kernel.ReplayTypes | None = Field(
        default=None, description="Only events of these types; absent: every type."
    )
    statuses: kernel.ReplayStatuses = Field(
        default=list(kernel.DEFAULT_STATUSES),
        description="Re-queue deliveries in these statuses (`succeeded` ones are sent "
        "again); may be empty with `missed`.",
    )
    since: Moment | None = Field(default=None, description="Events ingested at or after.")
    until: Moment | None = Field(
        default=None, description="Events ingested before; never later than now."
    )
    missed: bool = Field(
        default=False,
        description="Also deliver the events since `since` this endpoint would receive but "
        "never got (e.g. while it was disabled), numbered after its current ones.",
    )
    rate: kernel.ReplayRate | None = Field(
        default=None,
        description="Deliveries queued per second; absent: `HOOKLINE_REPLAY_RATE` (50).",
    )
    dry_run: bool = Field(
        default=False, description="Only count what would be queued: 200 `{count}`."
    )


class ReplaysIn(ReplayIn):
    endpoint: IdRef | None = Field(
        default=None, description="Only this endpoint's deliveries; absent: every endpoint."
    )


class ReplayFilterOut(BaseModel):
    types: list[str] | None
    statuses: list[kernel.Replayable]
    since: datetime | None
    until: datetime | None
    missed: bool


class ReplayOut(BaseModel):
    id: str
    endpoint: str | None
    filter: ReplayFilterOut
    rate: int
    state: State
    total: int = Field(description="What the dry run counted when the replay was created.")
    queued: int = Field(description="Deliveries queued so far.")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class ReplayCount(BaseModel):
    count: int = Field(description="Deliveries a replay with this filter would queue now.")


class ReplaysQuery(ListQuery):
    endpoint: Annotated[str, Field(max_length=200)] | None = None
    state: State | None = None


def replay_shape(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "endpoint": row["endpoint_id"],
        "filter": {
            "types": row["event_types"],
            "statuses": row["statuses"],
            "since": row["since"],
            "until": row["until"],
            "missed": row["missed"],
        },
        "rate": row["rate"],
        "state": row["state"],
        "total": row["total"],
        "queued": row["queued"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "finished_at": row["finished_at"],
    }


async def _read_optional(request: Request, model: type[M]) -> M:
    """The body as ``model``, or the model's defaults when there is no body at all."""
    no_body = "transfer-encoding" not in request.headers and request.headers.get(
        "content-length", "0"
    ) in ("", "0")
    return model() if no_body else await read_model(request, model)


async def _start(request: Request, tenant_id: str, endpoint: str | None, body: ReplayIn) -> JSON:
    svc = services(request)
    wanted = kernel.ReplayFilter(
        endpoint=endpoint,
        types=body.types,
        statuses=body.statuses,
        since=body.since,
        until=body.until,
        missed=body.missed,
    )
    if body.dry_run:
        return JSON({"count": await kernel.count_replay(svc.pool, tenant_id, wanted)})
    rate = body.rate or svc.settings.replay_rate
    created = await kernel.create_replay(
        svc.pool, tenant_id, wanted, rate, quota=svc.settings.tenant_max_replays
    )
    return JSON(replay_shape(created), status_code=202)


async def replay_endpoint(request: Request) -> Response:
    """Re-send this endpoint's deliveries that match the filter (by default: every failed
    one), as a job that queues `rate` per second so live deliveries keep flowing.

    Send `{"dry_run": true}` first: it answers 200 `{"count": N}` and changes nothing.
    Without it the answer is 202 with the replay; follow it at `GET /v1/replays/{id}`,
    pause, resume or cancel it there. Each delivery gets one immediate attempt, as a manual
    retry. With `missed: true` and `since`, the events since then that this endpoint would
    receive but never got (it was disabled) are delivered too, with new sequence numbers
    after the ones it has. Cancelled and expired events are never replayed, and nothing
    ingested after the replay starts is part of it.
    """
    owner = await tenant(request)
    body = await _read_optional(request, ReplayIn)
    return await _start(request, owner.id, request.path_params["id"], body)


async def create(request: Request) -> Response:
    """Re-send the deliveries of every endpoint (or the one named) that match the filter;
    see `POST /v1/endpoints/{id}/replay`. `dry_run: true` answers 200 `{"count": N}`."""
    owner = await tenant(request)
    body = await _read_optional(request, ReplaysIn)
    try:
        return await _start(request, owner.id, body.endpoint, body)
    except NotFound:
        msg = f"no endpoint {body.endpoint!r}"
        raise InvalidInput(msg, problems=[Problem(("endpoint",), msg, UNKNOWN)]) from None


async def index(request: Request) -> Response:
    owner = await tenant(request)
    query = read_query(request, ReplaysQuery)
    rows = await kernel.list_replays(
        services(request).pool,
        owner.id,
        endpoint=query.endpoint,
        state=query.state,
        cursor=query.cursor,
        limit=query.limit,
    )
    return page(rows, query.limit, replay_shape)


async def read(request: Request) -> Response:
    """A replay with its progress: `queued` of `total`."""
    owner = await tenant(request)
    found = await kernel.get_replay(services(request).pool, owner.id, request.path_params["id"])
    return JSON(replay_shape(found))


def _change(action: str) -> Handler:
    async def change(request: Request) -> Response:
        owner = await tenant(request)
        changed = await kernel.change_replay(
            services(request).pool, owner.id, request.path_params["id"], action
        )
        return JSON(replay_shape(changed))

    change.__doc__ = _CHANGES[action]
    return change


_CHANGES = {
    "pause": "Stop queueing (deliveries already queued are still sent); resume goes on "
    "where it stopped. 409 once the replay is done or cancelled.",
    "resume": "Go on queueing a paused replay. 409 once it is done or cancelled.",
    "cancel": "Stop for good (deliveries already queued are still sent). 409 once it is "
    "done or cancelled.",
}

TAG = "Replays"


def _starting(
    path: str, handler: Handler, summary: str, body: type[ReplayIn], errors: tuple[int, ...]
) -> ApiRoute:
    return operation(
        "POST",
        path,
        handler,
        summary=summary,
        tag=TAG,
        body=body,
        body_required=False,
        response=ReplayOut,
        status=202,
        alternatives=[(200, ReplayCount, "The dry run: how many would be queued")],
        errors=errors,
        idempotent=True,
    )


routes = [
    _starting(
        "/v1/endpoints/{id}/replay",
        replay_endpoint,
        "Replay an endpoint's deliveries",
        ReplayIn,
        (400, 404, 422, 429),
    ),
    _starting("/v1/replays", create, "Replay deliveries by filter", ReplaysIn, (400, 422, 429)),
    operation(
        "GET",
        "/v1/replays",
        index,
        summary="List replays",
        tag=TAG,
        query=ReplaysQuery,
        response=Page[ReplayOut],
        errors=(422,),
    ),
    operation(
        "GET",
        "/v1/replays/{id}",
        read,
        summary="Get a replay and its progress",
        tag=TAG,
        response=ReplayOut,
        errors=(404,),
    ),
    *(
        operation(
            "POST",
            f"/v1/replays/{{id}}/{action}",
            _change(action),
            summary=f"{action.capitalize()} a replay",
            tag=TAG,
            response=ReplayOut,
            errors=(404, 409),
        )
        for action in _CHANGES
    ),
]
