"""Deliveries: the live list with its filters, the dead letters, one delivery's attempts,
and retrying one.

Both audiences see these pages; a portal session sees only the deliveries to its own
subscriber's endpoints (the kernel filters by ``subscriber_id``), and another subscriber's
delivery id is a 404 like an id that does not exist. The list's first page is polled as an
htmx fragment, so new deliveries and status changes show without a reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.web import HEADERS, form, render, ring, viewer
from hookline.db import Row
from hookline.deliveries import (
    STATUS_CLASSES,
    STATUSES,
    event_of_producer_id,
    get_delivery,
    list_deliveries,
    retry_delivery,
)
from hookline.endpoints import list_endpoints
from hookline.errors import Conflict, NotFound
from hookline.event_types import list_event_types
from hookline.events import get_event
from hookline.fields import ID_MAX
from hookline.moments import RANGE, check_moment
from hookline.services import services
from hookline.sessions import Session

PAGE = 50
#: Endpoints and event types offered in the filters' pickers.
CHOICES = 200
_LIVE = ("pending", "retrying")  # a delivery in these may still change on its own
_MAX_TEXT = ID_MAX


@dataclass(frozen=True)
class Filters:
    """The list's filters as typed (strings, so the form shows them back), and what is
    wrong with them. Empty means "any"."""

    status: str = ""
    endpoint: str = ""
    type: str = ""
    after: str = ""
    before: str = ""
    http: str = ""
    q: str = ""
    cursor: str = ""
    errors: dict[str, str] = field(default_factory=dict, compare=False)

    def narrowed(self, *, beyond_status: bool = False) -> bool:
        """Whether any filter is set (besides the status, with ``beyond_status``)."""
        ignored = {"cursor", "errors", *(("status",) if beyond_status else ())}
        return any(getattr(self, f.name) for f in fields(self) if f.name not in ignored)

    def only_endpoint(self) -> bool:
        """Just one endpoint's deliveries, as the list inside an endpoint's page asks."""
        return bool(self.endpoint) and not replace(self, endpoint="").narrowed()

    def query(self, **changes: str) -> str:
        """The filters as a query string, with ``changes``; empty values left out."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "errors"}
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v})


def _moment(value: str) -> datetime:
    """A ``datetime-local`` value (no zone: UTC, as every time on these pages), within the
    range every moment hookline accepts lies in (else ValueError)."""
    parsed = datetime.fromisoformat(value)
    return check_moment(parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed)


def read_filters(params: QueryParams, *, status: str | None = None) -> Filters:
    """The filters of a query string, checked; ``status`` fixes the status (dead letters)."""
    raw = {f.name: params.get(f.name, "").strip() for f in fields(Filters) if f.name != "errors"}
    if status is not None:
        raw["status"] = status
    errors: dict[str, str] = {}
    for name, value in raw.items():
        if len(value) > _MAX_TEXT:
            errors[name] = f"At most {_MAX_TEXT} characters."
    if raw["status"] and raw["status"] not in STATUSES:
        errors["status"] = "Pick a status from the list."
    if raw["http"] and raw["http"] not in STATUS_CLASSES:
        errors["http"] = "Pick a class from the list."
    moments: dict[str, datetime] = {}
    for name in ("after", "before"):
        if raw[name] and name not in errors:
            try:
                moments[name] = _moment(raw[name])
            except ValueError:
                errors[name] = f"A date and time like 2025-05-01T09:30 (UTC), {RANGE}."
    if len(moments) == 2 and moments["after"] >= moments["before"]:
        errors["before"] = "Must be later than From."
    return Filters(**raw, errors=errors)


def _back(value: object, default: str) -> str:
    """Where to go after a form: a path on this server only."""
    if not isinstance(value, str) or not value.startswith("/"):
        return default
    return default if value.startswith("//") or "\\" in value else value


def _not_found(what: str) -> HTTPException:
    return HTTPException(
        404,
        f"There is no {what} with this id here. It may have been deleted, or the link is wrong.",
    )


async def _rows(request: Request, session: Session, f: Filters) -> tuple[list[Row], bool]:
    """A page of deliveries matching ``f`` (one more than shown tells whether there are more)."""
    if f.errors:
        return [], False
    pool = services(request).pool
    event = f.q or None  # an evt_ id as it is, else the producer's own id for an event
    if f.q and not f.q.startswith("evt_"):
        event = await event_of_producer_id(pool, session.tenant_id, f.q) or f.q
    found = await list_deliveries(
        pool,
        session.tenant_id,
        endpoint=f.endpoint or None,
        event=event,
        status=f.status or None,
        cursor=f.cursor or None,
        limit=PAGE + 1,
        after=_moment(f.after) if f.after else None,
        before=_moment(f.before) if f.before else None,
        status_class=STATUS_CLASSES[f.http] if f.http else None,
        event_type=f.type or None,
        subscriber_id=session.subscriber_id,
    )
    return found[:PAGE], len(found) > PAGE


async def _list_context(
    request: Request, session: Session, f: Filters, base: str, seen: str = ""
) -> dict[str, Any]:
    """What the rows fragment shows: ``seen`` is the newest id the page showed already,
    so rows newer than it are marked as fresh."""
    rows, more = await _rows(request, session, f)
    live = not f.cursor and not f.errors
    newest = max([seen, *(r["id"] for r in rows)])
    return {
        "rows": rows,
        "filters": f,
        "base": base,
        "live": live,
        "seen": seen,
        "poll_url": f"{base}/rows?{f.query(seen=newest)}" if live else "",
        "next_url": f"{base}?{f.query(cursor=rows[-1]['id'])}" if more else "",
        "here": f"{base}?{f.query()}",
    }


async def _pickers(request: Request, session: Session) -> dict[str, Any]:
    """The endpoints this session may see and the catalog's type names, for the filters."""
    pool = services(request).pool
    endpoints = await list_endpoints(pool, session.tenant_id, session.subscriber_uid, None, CHOICES)
    types = await list_event_types(pool, session.tenant_id, None, CHOICES)
    return {
        "endpoint_options": [("", "Any endpoint")] + [(e["id"], e["url"]) for e in endpoints],
        "type_names": [t["name"] for t in types],
    }


async def _list_page(request: Request, f: Filters, base: str, dead: bool) -> Response:
    session = await viewer(request)
    context = await _list_context(request, session, f, base)
    return await render(
        request,
        "deliveries/list.html",
        session,
        status_code=400 if f.errors else 200,
        title="Dead letters" if dead else "Deliveries",
        dead=dead,
        status_options=[("", "Any status"), *((s, s.capitalize()) for s in STATUSES)],
        http_options=[
            ("", "Any"),
            *((c, "No answer" if c == "none" else c) for c in STATUS_CLASSES),
        ],
        replay_query=urlencode(
            {
                k: v
                for k, v in (
                    ("status", "failed"),
                    ("endpoint", f.endpoint),
                    ("type", f.type),
                    ("since", f.after),
                    ("until", f.before),
                )
                if v
            }
        ),
        **context,
        **(await _pickers(request, session)),
    )


async def index(request: Request) -> Response:
    return await _list_page(request, read_filters(request.query_params), "/deliveries", False)


async def dead_letters(request: Request) -> Response:
    f = read_filters(request.query_params, status="failed")
    return await _list_page(request, f, "/dead-letters", True)


async def _fragment(request: Request, f: Filters, base: str) -> Response:
    session = await viewer(request)
    seen = request.query_params.get("seen", "")[:_MAX_TEXT]
    context = await _list_context(request, session, f, base, seen)
    return await render(
        request, "deliveries/_rows.html", session, dead=base != "/deliveries", **context
    )


async def rows(request: Request) -> Response:
    """The list's table alone, for the page's poll every 2 s."""
    return await _fragment(request, read_filters(request.query_params), "/deliveries")


async def dead_rows(request: Request) -> Response:
    f = read_filters(request.query_params, status="failed")
    return await _fragment(request, f, "/dead-letters")


def _headers(text: str | None) -> list[tuple[str, str]]:
    """Stored headers (JSON text of an object) as sorted pairs."""
    value = orjson.loads(text or "{}")
    return sorted((str(k), str(v)) for k, v in value.items()) if isinstance(value, Mapping) else []


def _attempts(delivery: Row) -> list[Row]:
    return [
        {
            **a,
            "request_headers": _headers(a["request_headers"]),
            "response_headers": _headers(a["response_headers"]),
            "ok": a["status_code"] is not None and 200 <= a["status_code"] < 300,
        }
        for a in delivery["attempts_list"]
    ]


async def _delivery(request: Request, session: Session) -> Row:
    try:
        return await get_delivery(
            services(request).pool,
            session.tenant_id,
            request.path_params["id"],
            session.subscriber_id,
        )
    except NotFound:
        raise _not_found("delivery") from None


def _version(delivery: Row) -> str:
    """Changes whenever the live part of the page would."""
    return f"{delivery['status']}.{delivery['attempts']}.{delivery['updated_at'].timestamp()}"


def _live_context(delivery: Row) -> dict[str, Any]:
    return {
        "delivery": delivery,
        "live_version": _version(delivery),
        "attempts": _attempts(delivery),
        "live": delivery["status"] in _LIVE,
        "retryable": delivery["status"] in ("failed", "cancelled"),
    }


async def detail(request: Request) -> Response:
    session = await viewer(request)
    delivery = await _delivery(request, session)
    event = await get_event(services(request).pool, session.tenant_id, delivery["event_id"])
    data = orjson.dumps(orjson.loads(event["data"]), option=orjson.OPT_INDENT_2).decode()
    return await render(
        request,
        "deliveries/detail.html",
        session,
        title=f"Delivery {delivery['id']}",
        event=event,
        data=data,
        **_live_context(delivery),
    )


async def detail_live(request: Request) -> Response:
    """The delivery's status and attempts alone, polled every 2 s while it may change;
    204 (htmx keeps what it shows, open details included) while nothing changed."""
    session = await viewer(request)
    delivery = await _delivery(request, session)
    if request.query_params.get("seen") == _version(delivery):
        return Response(status_code=204, headers=HEADERS)
    return await render(request, "deliveries/_live.html", session, **_live_context(delivery))


async def retry(request: Request) -> Response:
    """One more immediate attempt of a failed or cancelled delivery, then back."""
    session = await viewer(request)
    data = await form(request, session)
    svc = services(request)
    delivery_id = request.path_params["id"]
    try:
        await retry_delivery(
            svc.pool,
            session.tenant_id,
            delivery_id,
            svc.settings.retry_schedule,
            session.subscriber_id,
        )
    except NotFound:
        raise _not_found("delivery") from None
    except Conflict as exc:
        raise HTTPException(409, f"{exc.detail}. Reload the page to see where it is.") from None
    ring(request)
    return RedirectResponse(_back(data.get("next"), f"/deliveries/{delivery_id}"), 303)


routes: list[BaseRoute] = [
    Route("/deliveries", index, methods=["GET"]),
    Route("/deliveries/rows", rows, methods=["GET"]),
    Route("/dead-letters", dead_letters, methods=["GET"]),
    Route("/dead-letters/rows", dead_rows, methods=["GET"]),
    Route("/deliveries/{id}", detail, methods=["GET"]),
    Route("/deliveries/{id}/live", detail_live, methods=["GET"]),
    Route("/deliveries/{id}/retry", retry, methods=["POST"]),
]
