"""What can be done to one endpoint from its page: reveal and rotate the signing secret,
send a test event and watch its delivery arrive, pause and resume, replay what a disabled
endpoint missed, and delete it.

Every action finds the endpoint through the session's scope first (a portal session only
its subscriber's: another's is a 404) and checks the CSRF token of the form. The htmx
actions (reveal, test) answer with a fragment to an htmx request and with the whole page
otherwise, so they work without JavaScript too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.endpoints import (
    FINISHED,
    duration,
    find_endpoint,
    moment,
    render_detail,
    test_delivery,
)
from dashboard.web import form, render, ring, viewer
from hookline import endpoints as kernel
from hookline.endpoint_secrets import rotate_secret, signing_keys
from hookline.errors import Busy, Conflict, InvalidInput, NotFound
from hookline.fields import is_name
from hookline.replays import ReplayFilter, create_replay
from hookline.secrets import SignatureKind
from hookline.services import services
from hookline.sessions import Session

_GONE = "There is no such endpoint; it may have been deleted."


def _htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


# -- the signing secret --------------------------------------------------------------------


async def reveal(request: Request) -> Response:
    """The key to verify with: never in a page until someone asks for it."""
    session = await viewer(request)
    await form(request, session)
    endpoint = await find_endpoint(request, session)
    try:
        svc = services(request)
        keys = await signing_keys(
            svc.pool, session.tenant_id, endpoint["id"], session.subscriber_id, vault=svc.vault
        )
    except NotFound:
        raise HTTPException(404, _GONE) from None
    if _htmx(request):
        return await render(request, "endpoints/_secret.html", session, keys=keys)
    return await render_detail(request, session, endpoint, keys=keys)


def _grace(request: Request) -> str:
    """How long a replaced secret keeps signing, in words ("" when not at all)."""
    grace = services(request).settings.secret_rotation_grace
    return duration(grace) if grace else ""


async def rotate_confirm(request: Request) -> Response:
    session = await viewer(request)
    endpoint = await find_endpoint(request, session)
    return await render(
        request,
        "endpoints/rotate.html",
        session,
        title="Rotate the signing secret",
        endpoint=endpoint,
        grace=_grace(request),
    )


async def rotate(request: Request) -> Response:
    """Make a new secret (or keypair) current and show it once; the old one keeps signing
    for the grace period, so the receiver can switch without losing a request."""
    session = await viewer(request)
    data = await form(request, session)
    endpoint = await find_endpoint(request, session)
    kinds: dict[object, SignatureKind] = {"hmac": "hmac", "ed25519": "ed25519"}
    kind = kinds.get(data.get("signature"))  # anything else: keep the current kind
    svc = services(request)
    grace = svc.settings.secret_rotation_grace
    try:
        keys = await rotate_secret(
            svc.pool,
            session.tenant_id,
            endpoint["id"],
            grace,
            None,
            kind,
            session.subscriber_id,
            vault=svc.vault,
        )
    except NotFound:
        raise HTTPException(404, _GONE) from None
    return await render(
        request,
        "endpoints/rotate.html",
        session,
        title="New signing secret",
        endpoint=endpoint,
        keys=keys,
        old_until=datetime.now(UTC) + timedelta(seconds=grace),
        grace=_grace(request),
    )


# -- test events ---------------------------------------------------------------------------


async def send_test(request: Request) -> Response:
    """Send an example event of the chosen type to this endpoint only, and show its
    delivery (polled until it has its answer)."""
    session = await viewer(request)
    data = await form(request, session)
    endpoint = await find_endpoint(request, session)
    type_ = str(data.get("type") or "").strip()
    problem = None
    if endpoint["status"] != "active":
        problem = f"Not sent: the endpoint is {endpoint['status']}; resume it first."
    elif not is_name(type_):
        problem = "Choose the event type to send (letters, digits and . _ : - only)."
    else:
        svc = services(request)
        try:
            await svc.rates.admit(session.tenant_id, 1)  # an event like any other
            _, delivery_id = await kernel.send_test_event(
                svc.pool,
                session.tenant_id,
                endpoint["id"],
                type_,
                None,
                session.subscriber_id,
            )
            svc.rates.charge(session.tenant_id, 1)
        except NotFound:
            raise HTTPException(404, _GONE) from None
        except Busy as exc:
            problem = f"Not sent: {exc.detail}"
        except (Conflict, InvalidInput) as exc:
            problem = _test_problem(exc)
    if problem is not None:
        if _htmx(request):  # htmx swaps only 2xx answers in
            return await render(request, "endpoints/_test.html", session, problem=problem)
        return await render_detail(request, session, endpoint, status_code=422, problem=problem)
    ring(request)
    if not _htmx(request):
        return RedirectResponse(f"/endpoints/{endpoint['id']}?test={delivery_id}", 303)
    test = await test_delivery(request, session, endpoint, delivery_id)
    return await render(
        request, "endpoints/_test.html", session, endpoint=endpoint, test=test, finished=FINISHED
    )


def _test_problem(exc: Conflict | InvalidInput) -> str:
    details = [p.said() for p in exc.problems]
    return "Not sent: " + ("; ".join(d for d in details if d) or exc.detail)


async def test_status(request: Request) -> Response:
    """The test delivery's status and latest attempt: the fragment polls itself every
    second until the delivery has succeeded or failed."""
    session = await viewer(request)
    endpoint = await find_endpoint(request, session)
    test = await test_delivery(request, session, endpoint, request.path_params["delivery"])
    return await render(
        request, "endpoints/_test.html", session, endpoint=endpoint, test=test, finished=FINISHED
    )


# -- status, replay, delete ----------------------------------------------------------------


async def _set_status(request: Request, session: Session, status: str) -> Response:
    await form(request, session)
    svc = services(request)
    try:
        updated = await kernel.update_endpoint(
            svc.pool,
            session.tenant_id,
            request.path_params["id"],
            svc.settings.allowed_networks,
            {"status": status},
            session.subscriber_id,
            vault=svc.vault,
        )
    except NotFound:
        raise HTTPException(404, _GONE) from None
    target = f"/endpoints/{updated['id']}"
    if status == "active":
        ring(request)  # what waited is due now
    window = kernel.missed_window(updated)
    if window is not None:
        # re-enabled after being disabled: the page offers to replay what it missed
        target += "?replay_since=" + _iso(window[0]) + "&replay_until=" + _iso(window[1])
    return RedirectResponse(target, status_code=303)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def pause(request: Request) -> Response:
    return await _set_status(request, await viewer(request), "paused")


async def resume(request: Request) -> Response:
    return await _set_status(request, await viewer(request), "active")


async def replay_missed(request: Request) -> Response:
    """Start the replay a re-enabled endpoint was offered: what failed while it was
    disabled and what it never got; the replay's own page follows its progress."""
    session = await viewer(request)
    data = await form(request, session)
    endpoint = await find_endpoint(request, session)
    since, until = moment(data.get("since")), moment(data.get("until"))
    svc = services(request)
    wanted = ReplayFilter(endpoint=endpoint["id"], since=since, until=until, missed=True)
    try:
        created = await create_replay(
            svc.pool,
            session.tenant_id,
            wanted,
            svc.settings.replay_rate,
            session.subscriber_id,
            quota=svc.settings.tenant_max_replays,
        )
    except NotFound:
        raise HTTPException(404, _GONE) from None
    except InvalidInput as exc:
        problem = "; ".join(p.said() for p in exc.problems) or exc.detail
        return await render_detail(
            request, session, endpoint, status_code=422, replay_problem=f"Not replayed: {problem}"
        )
    return RedirectResponse(f"/replays/{created['id']}", status_code=303)


async def delete_confirm(request: Request) -> Response:
    session = await viewer(request)
    endpoint = await find_endpoint(request, session)
    return await render(
        request, "endpoints/delete.html", session, title="Delete endpoint", endpoint=endpoint
    )


async def delete(request: Request) -> Response:
    session = await viewer(request)
    await form(request, session)
    endpoint = await find_endpoint(request, session)
    try:
        await kernel.delete_endpoint(
            services(request).pool, session.tenant_id, endpoint["id"], session.subscriber_id
        )
    except NotFound:
        raise HTTPException(404, _GONE) from None
    except Conflict as exc:
        return await render(
            request,
            "endpoints/delete.html",
            session,
            status_code=409,
            title="Delete endpoint",
            endpoint=endpoint,
            problem=exc.detail,
        )
    return RedirectResponse("/endpoints", status_code=303)


routes: list[BaseRoute] = [
    Route("/endpoints/{id}/secret/reveal", reveal, methods=["POST"]),
    Route("/endpoints/{id}/secret/rotate", rotate_confirm, methods=["GET"]),
    Route("/endpoints/{id}/secret/rotate", rotate, methods=["POST"]),
    Route("/endpoints/{id}/test", send_test, methods=["POST"]),
    Route("/endpoints/{id}/test/{delivery}", test_status, methods=["GET"]),
    Route("/endpoints/{id}/pause", pause, methods=["POST"]),
    Route("/endpoints/{id}/resume", resume, methods=["POST"]),
    Route("/endpoints/{id}/replay", replay_missed, methods=["POST"]),
    Route("/endpoints/{id}/delete", delete_confirm, methods=["GET"]),
    Route("/endpoints/{id}/delete", delete, methods=["POST"]),
]
