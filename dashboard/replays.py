"""Replays: re-sending deliveries in bulk, with a dry-run count first and a progress bar.

The pages drive the same kernel operations as ``/v1/replays``, and the form is checked with
the same types (``hookline.replays``). Its times come from date-and-time fields, which have
no zone: they are read as UTC, as the form says. A portal session replays
one of its own endpoints only (the endpoint is required and checked), and sees only the
replays of its endpoints; another subscriber's replay id is a 404.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData, ImmutableMultiDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.web import form, render, viewer
from hookline import replays as kernel
from hookline.db import Row
from hookline.endpoint_fields import EVENT_TYPES_MAX
from hookline.endpoints import list_endpoints
from hookline.errors import Conflict, InvalidInput, NotFound, Problem
from hookline.event_types import list_event_types
from hookline.fields import ID_MAX
from hookline.moments import RANGE, check_moment
from hookline.services import services
from hookline.sessions import Session

PAGE = 50
CHOICES = 200  # endpoints and event types offered in the form
_MAX_TEXT = ID_MAX
_TYPES = TypeAdapter(kernel.ReplayTypes)
_RATE = TypeAdapter(kernel.ReplayRate)


@dataclass
class ReplayForm:
    """The replay form as typed, so it shows back with the errors next to the fields."""

    endpoint: str = ""
    types: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=lambda: list(kernel.DEFAULT_STATUSES))
    since: str = ""
    until: str = ""
    missed: bool = False
    rate: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, values: ImmutableMultiDict[str, Any] | FormData, *, posted: bool) -> ReplayForm:
        """From a posted form, or (``posted`` False) from a link's query string, where the
        dead-letter page names one ``status`` and ``type`` and the filter's time range."""

        def text(name: str) -> str:
            value = values.get(name, "")
            return value.strip() if isinstance(value, str) else ""

        def many(*names: str) -> list[str]:
            found: list[str] = []
            for name in names:
                found += [v.strip() for v in values.getlist(name) if isinstance(v, str) and v]
            return found

        statuses = (
            many("statuses")
            if posted
            else (many("statuses", "status") or list(kernel.DEFAULT_STATUSES))
        )
        return cls(
            endpoint=text("endpoint"),
            types=list(dict.fromkeys(many("types", "type"))),
            statuses=statuses,
            since=text("since"),
            until=text("until"),
            missed=text("missed") in ("1", "on", "true"),
            rate=text("rate"),
        )

    def to_filter(self, default_rate: int) -> tuple[kernel.ReplayFilter, int] | None:
        """The kernel's filter and rate, or None with :attr:`errors` filled in."""
        moments: dict[str, datetime | None] = {}
        for name in ("since", "until"):
            value = getattr(self, name)
            moments[name] = None
            if value:
                try:
                    parsed = datetime.fromisoformat(value)
                    moments[name] = check_moment(
                        parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
                    )
                except ValueError:
                    self.errors[name] = f"A date and time like 2025-05-01T09:30 (UTC), {RANGE}."
        rate = default_rate
        if self.rate:
            try:
                rate = _RATE.validate_python(int(self.rate))
            except ValueError:  # not a number, or pydantic's ValidationError (one too)
                self.errors["rate"] = f"A whole number from 1 to {kernel.MAX_RATE}."
        if self.types:
            try:
                _TYPES.validate_python(self.types)
            except ValidationError:
                self.errors["types"] = (
                    f"At most {EVENT_TYPES_MAX} event types, each a name from the catalog."
                )
        if len(self.endpoint) > _MAX_TEXT:
            self.errors["endpoint"] = "Pick an endpoint from the list."
        if self.errors:
            return None
        wanted = kernel.ReplayFilter(
            endpoint=self.endpoint or None,
            types=self.types or None,
            statuses=tuple(self.statuses),
            since=moments["since"],
            until=moments["until"],
            missed=self.missed,
        )
        return wanted, rate

    def take(self, exc: InvalidInput | NotFound) -> None:
        """Put the kernel's complaint next to the field it is about."""
        if isinstance(exc, NotFound):
            self.errors["endpoint"] = "Pick an endpoint from the list."
            return
        for problem in exc.problems or [Problem(("statuses",), exc.detail)]:
            name = str(problem.at[-1]) if problem.at else "statuses"
            self.errors[name if name in _FIELDS else "statuses"] = _sentence(problem.said())


_FIELDS = ("endpoint", "types", "statuses", "since", "until", "missed", "rate")


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _not_found() -> HTTPException:
    return HTTPException(
        404, "There is no replay with this id here. It may have been deleted, or the link is wrong."
    )


async def _choices(request: Request, session: Session) -> dict[str, Any]:
    """What the form offers: the endpoints this session may replay, the catalog's types."""
    pool = services(request).pool
    endpoints = await list_endpoints(pool, session.tenant_id, session.subscriber_uid, None, CHOICES)
    types = await list_event_types(pool, session.tenant_id, None, CHOICES)
    options = [(e["id"], e["url"]) for e in endpoints]
    first = ("", "Pick your endpoint") if session.is_subscriber else ("", "Every endpoint")
    return {
        "endpoint_options": [first, *options],
        "endpoint_urls": dict(options),
        "type_names": [t["name"] for t in types],
        "statuses": kernel.STATUSES,
        "max_rate": kernel.MAX_RATE,
    }


async def _form_page(
    request: Request,
    session: Session,
    entered: ReplayForm,
    *,
    count: int | None = None,
    status_code: int = 200,
) -> Response:
    """The form, whole page or (for htmx) the form alone with the count or the errors."""
    fragment = bool(request.headers.get("hx-request"))
    return await render(
        request,
        "replays/_form.html" if fragment else "replays/new.html",
        session,
        status_code=200 if fragment else status_code,  # htmx swaps 2xx answers only
        title="Replay deliveries",
        entered=entered,
        count=count,
        default_rate=services(request).settings.replay_rate,
        **(await _choices(request, session)),
    )


async def new(request: Request) -> Response:
    session = await viewer(request)
    entered = ReplayForm.read(request.query_params, posted=False)
    return await _form_page(request, session, entered)


async def _checked(
    request: Request, session: Session
) -> tuple[ReplayForm, tuple[kernel.ReplayFilter, int] | None]:
    entered = ReplayForm.read(await form(request, session), posted=True)
    if session.is_subscriber and not entered.endpoint:
        entered.errors["endpoint"] = "Pick the endpoint to replay."
    return entered, entered.to_filter(services(request).settings.replay_rate)


async def count(request: Request) -> Response:
    """The dry run: how many deliveries the replay would send again now."""
    session = await viewer(request)
    entered, wanted = await _checked(request, session)
    found = None
    if wanted is not None:
        try:
            found = await kernel.count_replay(
                services(request).pool, session.tenant_id, wanted[0], session.subscriber_id
            )
        except (InvalidInput, NotFound) as exc:
            entered.take(exc)
    code = 400 if entered.errors else 200
    return await _form_page(request, session, entered, count=found, status_code=code)


async def start(request: Request) -> Response:
    session = await viewer(request)
    entered, wanted = await _checked(request, session)
    if wanted is not None:
        try:
            created = await kernel.create_replay(
                services(request).pool,
                session.tenant_id,
                wanted[0],
                wanted[1],
                session.subscriber_id,
                quota=services(request).settings.tenant_max_replays,
            )
        except (InvalidInput, NotFound) as exc:
            entered.take(exc)
        else:
            return RedirectResponse(f"/replays/{created['id']}", 303)
    return await _form_page(request, session, entered, status_code=400)


async def index(request: Request) -> Response:
    session = await viewer(request)
    cursor = request.query_params.get("cursor", "")[:_MAX_TEXT] or None
    found = await kernel.list_replays(
        services(request).pool,
        session.tenant_id,
        endpoint=None,
        state=None,
        cursor=cursor,
        limit=PAGE + 1,
        subscriber_id=session.subscriber_id,
    )
    rows = found[:PAGE]
    return await render(
        request,
        "replays/list.html",
        session,
        title="Replays",
        rows=rows,
        next_url=f"/replays?cursor={rows[-1]['id']}" if len(found) > PAGE else "",
        **(await _choices(request, session)),
    )


async def _replay(request: Request, session: Session) -> Row:
    try:
        return await kernel.get_replay(
            services(request).pool,
            session.tenant_id,
            request.path_params["id"],
            session.subscriber_id,
        )
    except NotFound:
        raise _not_found() from None


def _progress(replay: Row) -> dict[str, Any]:
    total, queued, done = replay["total"], replay["queued"], replay["state"] == "done"
    bar_max = max(total, 1)
    return {
        "replay": replay,
        "live": replay["state"] == "running",
        # done is a full bar even if some deliveries changed status before their turn came
        "bar_max": bar_max,
        "bar_value": bar_max if done else min(queued, bar_max),
        "percent": 100 if done or total == 0 else min(100, queued * 100 // total),
    }


async def detail(request: Request) -> Response:
    session = await viewer(request)
    replay = await _replay(request, session)
    return await render(
        request,
        "replays/detail.html",
        session,
        title=f"Replay {replay['id']}",
        **_progress(replay),
        **(await _choices(request, session)),
    )


async def progress(request: Request) -> Response:
    """The state, the bar and the buttons alone, polled every second while running."""
    session = await viewer(request)
    replay = await _replay(request, session)
    return await render(request, "replays/_progress.html", session, **_progress(replay))


async def change(request: Request) -> Response:
    """Pause, resume or cancel, then back to the replay."""
    session = await viewer(request)
    await form(request, session)
    action = request.path_params["action"]
    if action not in ("pause", "resume", "cancel"):
        raise HTTPException(404, "A replay can be paused, resumed or cancelled; nothing else.")
    replay_id = request.path_params["id"]
    try:
        await kernel.change_replay(
            services(request).pool, session.tenant_id, replay_id, action, session.subscriber_id
        )
    except NotFound:
        raise _not_found() from None
    except Conflict as exc:
        raise HTTPException(409, f"{exc.detail}.") from None
    return RedirectResponse(f"/replays/{replay_id}", 303)


routes: list[BaseRoute] = [
    Route("/replays", index, methods=["GET"]),
    Route("/replays", start, methods=["POST"]),
    Route("/replays/new", new, methods=["GET"]),
    Route("/replays/count", count, methods=["POST"]),
    Route("/replays/{id}", detail, methods=["GET"]),
    Route("/replays/{id}/progress", progress, methods=["GET"]),
    Route("/replays/{id}/{action}", change, methods=["POST"]),
]
