"""Endpoint pages: the list, one endpoint's page, and the form that registers or edits one.

Operators see every endpoint of the tenant; a portal session sees and changes only its own
subscriber's, decided in SQL by the kernel's ``subscriber_id`` scope, so another's id is a
404 like an id that does not exist. The form (:mod:`dashboard.endpoint_form`) is checked
with the API's limits and then by the kernel (the SSRF check of the URL, the subscriber),
and every problem is shown next to its field with what the person typed kept. The secret,
test sends, pause and resume, replay and delete are in :mod:`dashboard.endpoint_actions`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.endpoint_form import (
    EDITABLE,
    EndpointForm,
    blank_form,
    form_of,
    kernel_errors,
    read_form,
    say,
)
from dashboard.web import form, render, viewer
from hookline import endpoint_fields as spec
from hookline import endpoints as kernel
from hookline.db import Pool, Row
from hookline.deliveries import get_delivery, list_deliveries
from hookline.errors import InvalidInput, NotFound
from hookline.event_types import list_event_types
from hookline.moments import check_moment
from hookline.replays import ReplayFilter, count_replay
from hookline.services import services
from hookline.sessions import Session
from hookline.subscribers import list_subscribers
from hookline.targets import TargetRefused, check_target

PAGE = 50  # endpoints per page of the list
RECENT = 10  # deliveries on an endpoint's page
LISTED_AT_MOST = 1000  # catalog types and subscribers a form offers

#: A test delivery in one of these has its answer: its fragment stops polling.
FINISHED = ("succeeded", "failed", "cancelled")


# -- what may be seen ----------------------------------------------------------------------


async def find_endpoint(request: Request, session: Session) -> Row:
    """The endpoint named in the path if this session may see it, else a 404 page."""
    try:
        return await kernel.get_endpoint(
            services(request).pool,
            session.tenant_id,
            request.path_params["id"],
            session.subscriber_id,
        )
    except NotFound:
        raise HTTPException(404, "There is no such endpoint; it may have been deleted.") from None


async def test_delivery(request: Request, session: Session, endpoint: Row, delivery_id: str) -> Row:
    """A delivery to ``endpoint`` (with its attempts), else a 404 page."""
    try:
        found = await get_delivery(
            services(request).pool, session.tenant_id, delivery_id, session.subscriber_id
        )
    except NotFound:
        found = None
    if found is None or found["endpoint_id"] != endpoint["id"]:
        raise HTTPException(404, "This endpoint has no such delivery.")
    return found


async def _all(fetch: Callable[[str | None], Any], key: str) -> list[Row]:
    """Every row of a paged kernel list, up to :data:`LISTED_AT_MOST`."""
    found: list[Row] = []
    cursor: str | None = None
    while len(found) < LISTED_AT_MOST:
        batch: list[Row] = await fetch(cursor)
        found.extend(batch)
        if len(batch) < 100:
            break
        cursor = batch[-1][key]
    return found


async def catalog(pool: Pool, tenant_id: str) -> list[Row]:
    """The tenant's event types (name order), with their descriptions."""
    return await _all(lambda c: list_event_types(pool, tenant_id, c, 100), "name")


async def _subscribers(pool: Pool, session: Session) -> list[Row]:
    if session.is_subscriber:
        return []
    return await _all(lambda c: list_subscribers(pool, session.tenant_id, c, 100), "id")


async def _check_url_too(request: Request, f: EndpointForm, session: Session) -> None:
    """Other fields are wrong: say what is wrong with the URL too, all at once."""
    if "url" in f.fields:
        try:
            await check_target(f.fields["url"], services(request).settings.allowed_networks)
        except TargetRefused as exc:
            f.errors["url"] = say(kernel.url_problem(exc), session)


async def _form_page(
    request: Request,
    session: Session,
    f: EndpointForm,
    endpoint: Row | None = None,
    status_code: int = 200,
) -> Response:
    svc = services(request)
    types = await catalog(svc.pool, session.tenant_id)
    known = {t["name"] for t in types}
    return await render(
        request,
        "endpoints/form.html",
        session,
        status_code=status_code,
        title="Edit endpoint" if endpoint else "New endpoint",
        form=f,
        endpoint=endpoint,
        catalog=types,
        # picked types the catalog lacks (the tenant accepts unknown types): kept, shown
        extra_types=[t for t in f.event_types if t not in known],
        subscribers=[] if endpoint else await _subscribers(svc.pool, session),
        orderings=list(spec.ORDERINGS.items()),
        payloads=list(spec.PAYLOADS.items()),
        formats=list(spec.FORMATS.items()),
        on_exhausted=list(spec.ON_EXHAUSTED.items()),
        signatures=list(spec.SIGNATURES.items()),
        default_timeout=svc.settings.delivery_timeout,
    )


# -- pages ---------------------------------------------------------------------------------


async def index(request: Request) -> Response:
    session = await viewer(request)
    pool = services(request).pool
    subscriber = None if session.is_subscriber else request.query_params.get("subscriber") or None
    cursor = request.query_params.get("cursor") or None
    rows = await kernel.list_endpoints(
        pool, session.tenant_id, subscriber, cursor, PAGE + 1, subscriber_id=session.subscriber_id
    )
    next_url = None
    if len(rows) > PAGE:
        rows = rows[:PAGE]
        query = {"subscriber": subscriber or "", "cursor": rows[-1]["id"]}
        next_url = "/endpoints?" + urlencode({k: v for k, v in query.items() if v})
    return await render(
        request,
        "endpoints/list.html",
        session,
        title="Endpoints",
        endpoints=rows,
        subscriber=subscriber or "",
        subscribers=await _subscribers(pool, session),
        next_url=next_url,
    )


async def new(request: Request) -> Response:
    session = await viewer(request)
    return await _form_page(
        request, session, blank_form(request.query_params.get("subscriber", ""))
    )


async def create(request: Request) -> Response:
    session = await viewer(request)
    f = read_form(await form(request, session), creating=True, session=session)
    if f.errors:
        await _check_url_too(request, f, session)
        return await _form_page(request, session, f, status_code=422)
    svc = services(request)
    try:
        created = await kernel.create_endpoint(
            svc.pool,
            session.tenant_id,
            svc.settings.allowed_networks,
            f.fields,
            quota=svc.settings.tenant_max_endpoints,
            vault=svc.vault,
        )
    except InvalidInput as exc:
        f.errors.update(kernel_errors(exc, session))
        return await _form_page(request, session, f, status_code=422)
    return RedirectResponse(f"/endpoints/{created['id']}", status_code=303)


async def edit(request: Request) -> Response:
    session = await viewer(request)
    endpoint = await find_endpoint(request, session)
    return await _form_page(request, session, form_of(endpoint), endpoint)


async def update(request: Request) -> Response:
    session = await viewer(request)
    endpoint = await find_endpoint(request, session)
    f = read_form(await form(request, session), creating=False, session=session)
    if f.errors:
        await _check_url_too(request, f, session)
        return await _form_page(request, session, f, endpoint, status_code=422)
    changes = {name: f.fields[name] for name in EDITABLE}
    if changes["url"] == endpoint["url"]:
        del changes["url"]  # unchanged: not checked again (its host may be down right now)
    svc = services(request)
    try:
        await kernel.update_endpoint(
            svc.pool,
            session.tenant_id,
            endpoint["id"],
            svc.settings.allowed_networks,
            changes,
            session.subscriber_id,
            vault=svc.vault,
        )
    except NotFound:
        raise HTTPException(404, "There is no such endpoint; it may have been deleted.") from None
    except InvalidInput as exc:
        f.errors.update(kernel_errors(exc, session))
        return await _form_page(request, session, f, endpoint, status_code=422)
    return RedirectResponse(f"/endpoints/{endpoint['id']}", status_code=303)


def duration(seconds: float) -> str:
    """``86400`` as "1 day", ``7200`` as "2 hours": the largest unit that divides it."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:g} seconds"


def moment(text: object) -> datetime | None:
    """An ISO 8601 time with a zone from a form or query string, else None."""
    try:
        found = datetime.fromisoformat(text) if isinstance(text, str) and text else None
        return None if found is None or found.tzinfo is None else check_moment(found)
    except ValueError:
        return None


async def _replay_offer(
    request: Request, session: Session, endpoint: Row, query: QueryParams
) -> dict[str, Any] | None:
    """After re-enabling a disabled endpoint: the window it missed and how much a replay
    of it would send (the resume handler passes the window in the query string)."""
    since, until = moment(query.get("replay_since")), moment(query.get("replay_until"))
    if endpoint["status"] != "active" or since is None or until is None:
        return None
    wanted = ReplayFilter(endpoint=endpoint["id"], since=since, until=until, missed=True)
    try:
        count = await count_replay(
            services(request).pool, session.tenant_id, wanted, session.subscriber_id
        )
    except (InvalidInput, NotFound):
        return None
    return {"since": since, "until": until, "count": count}


async def render_detail(
    request: Request,
    session: Session,
    endpoint: Row,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """An endpoint's page; ``context`` adds what an action has to show (an error, the
    revealed keys, a test delivery)."""
    svc = services(request)
    recent = await list_deliveries(
        svc.pool,
        session.tenant_id,
        endpoint=endpoint["id"],
        event=None,
        status=None,
        cursor=None,
        limit=RECENT,
        subscriber_id=session.subscriber_id,
    )
    test_types = endpoint["event_types"] or [
        t["name"] for t in await catalog(svc.pool, session.tenant_id)
    ]
    test_id = request.query_params.get("test")
    if test_id and "test" not in context:
        with contextlib.suppress(HTTPException):  # not this endpoint's: nothing to show
            context["test"] = await test_delivery(request, session, endpoint, test_id)
    return await render(
        request,
        "endpoints/detail.html",
        session,
        status_code=status_code,
        title=endpoint["description"] or endpoint["url"],
        endpoint=endpoint,
        recent=recent,
        test_types=test_types,
        offer=await _replay_offer(request, session, endpoint, request.query_params),
        orderings=spec.ORDERINGS,
        default_timeout=svc.settings.delivery_timeout,
        finished=FINISHED,
        **context,
    )


async def detail(request: Request) -> Response:
    session = await viewer(request)
    return await render_detail(request, session, await find_endpoint(request, session))


routes: list[BaseRoute] = [
    Route("/endpoints", index, methods=["GET"]),
    Route("/endpoints", create, methods=["POST"]),
    Route("/endpoints/new", new, methods=["GET"]),
    Route("/endpoints/{id}", detail, methods=["GET"]),
    Route("/endpoints/{id}", update, methods=["POST"]),
    Route("/endpoints/{id}/edit", edit, methods=["GET"]),
]
