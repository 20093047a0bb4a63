"""Events: the list with each event's fan-out, and one event with its data and deliveries.

Operators see every event of the tenant. A portal session sees only the events that have
a delivery to one of its subscriber's endpoints, and counts only those deliveries; any
other event id is a 404, like one that does not exist.
"""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.web import render, viewer
from hookline.deliveries import event_of_producer_id
from hookline.errors import NotFound
from hookline.event_types import list_event_types
from hookline.events import event_deliveries, event_detail, event_fanouts, list_events
from hookline.fields import ID_MAX, is_name
from hookline.services import services

PAGE = 50
DELIVERIES_SHOWN = 200
_MAX_TEXT = ID_MAX
#: How a delivery status reads in a fan-out, in the order they are listed.
FANOUT_WORDS = {
    "succeeded": "delivered",
    "pending": "pending",
    "retrying": "retrying",
    "failed": "dead-lettered",
    "cancelled": "cancelled",
}


def fanout_text(counts: dict[str, int]) -> str:
    """``{"succeeded": 3, "retrying": 1}`` as "3 delivered · 1 retrying"."""
    parts = [f"{counts[s]:,} {word}" for s, word in FANOUT_WORDS.items() if counts.get(s)]
    return " · ".join(parts) or "no deliveries"


def pretty_json(text: str | None) -> str:
    """JSON text indented for reading (the page escapes it when it shows it)."""
    if text is None:
        return ""
    return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()


async def index(request: Request) -> Response:
    session = await viewer(request)
    pool = services(request).pool
    params = request.query_params
    type_ = params.get("type", "").strip()
    q = params.get("q", "").strip()
    cursor = params.get("cursor", "").strip()
    errors: dict[str, str] = {}
    for name, value in (("type", type_), ("q", q), ("cursor", cursor)):
        if len(value) > _MAX_TEXT:
            errors[name] = f"At most {_MAX_TEXT} characters."
    if type_ and "type" not in errors and not is_name(type_):
        errors["type"] = "Pick a type from the list."  # what the API's type filter takes
    if q and not errors:
        # an evt_ id as it is, else the producer's own id for an event; either way the
        # event page checks the scope and answers 404 for an event out of it
        found = (
            q if q.startswith("evt_") else await event_of_producer_id(pool, session.tenant_id, q)
        )
        if found is not None:
            try:
                await event_detail(pool, session.tenant_id, found, session.subscriber_id)
            except NotFound:
                pass
            else:
                return RedirectResponse(f"/events/{found}", status_code=303)
        errors["q"] = "No event with this id (ours, evt_…, or your own)."
    rows = []
    if not errors:
        rows = await list_events(
            pool,
            session.tenant_id,
            type_=type_ or None,
            subscriber=None,
            after=None,
            before=None,
            cursor=cursor or None,
            limit=PAGE + 1,
            subscriber_id=session.subscriber_id,
        )
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    fanouts = await event_fanouts(
        pool, session.tenant_id, [r["id"] for r in rows], session.subscriber_id
    )
    types = await list_event_types(pool, session.tenant_id, None, 200)
    query = {k: v for k, v in (("type", type_),) if v}
    return await render(
        request,
        "events/list.html",
        session,
        status_code=400 if errors else 200,
        title="Events",
        rows=[{**r, "fanout": fanout_text(fanouts.get(r["id"], {}))} for r in rows],
        type_=type_,
        q=q,
        errors=errors,
        type_names=[t["name"] for t in types],
        narrowed=bool(type_ or q),
        next_url=f"/events?{urlencode({**query, 'cursor': rows[-1]['id']})}" if more else "",
    )


async def detail(request: Request) -> Response:
    session = await viewer(request)
    pool = services(request).pool
    event_id = request.path_params["id"]
    try:
        event = await event_detail(pool, session.tenant_id, event_id, session.subscriber_id)
    except NotFound:
        raise HTTPException(
            404,
            "There is no event with this id here. It may have been deleted, or the link is wrong.",
        ) from None
    deliveries = await event_deliveries(
        pool, session.tenant_id, event_id, session.subscriber_id, DELIVERIES_SHOWN + 1
    )
    summary = event["delivery_summary"]
    return await render(
        request,
        "events/detail.html",
        session,
        title=f"Event {event_id}",
        event=event,
        data=pretty_json(event["data"]),
        fanout=fanout_text(summary),
        total=sum(summary.values()),
        deliveries=deliveries[:DELIVERIES_SHOWN],
        more=len(deliveries) > DELIVERIES_SHOWN,
    )


routes: list[BaseRoute] = [
    Route("/events", index, methods=["GET"]),
    Route("/events/{id}", detail, methods=["GET"]),
]
