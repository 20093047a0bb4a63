"""Endpoints (subscriptions): where a subscriber's webhooks go and how.

Writers of lanes lock them ``ORDER BY endpoint_id, key`` before anything else they touch,
as ingest and the dispatcher do, so that none of them can deadlock another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from hookline import lanes, secrets
from hookline.db import QUERIES, Pool, Row, row
from hookline.endpoint_fields import DEFAULTS
from hookline.errors import UNKNOWN, Conflict, InvalidInput, NotFound, Problem
from hookline.event_types import check_events, example_data
from hookline.events import ingest_event
from hookline.quotas import make_room
from hookline.settings import IPNetwork
from hookline.targets import TargetRefused, check_target
from hookline.vault import REDACTED, Vault

#: Fields of an endpoint that :func:`update_endpoint` may change.
PATCHABLE = (
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
    "headers",
    "schema_version",
    "status",
    "retry_schedule",
    "disable_after",
    "sensitive_headers",
)

# Deleting waits for workers that still hold a lane of the endpoint. A lease lasts two
# attempt deadlines (30 s at most each) and a margin, so this is never reached unless
# someone keeps reactivating the endpoint while it is being deleted.
_DELETE_PATIENCE = 120.0
_DELETE_POLL = 0.05


async def _check_url(url: str, allowed: Sequence[IPNetwork]) -> None:
    try:
        await check_target(url, allowed)
    except TargetRefused as exc:
        raise InvalidInput(str(exc), problems=[url_problem(exc)]) from None


def url_problem(exc: TargetRefused) -> Problem:
    """A refused target as the problem with an endpoint's ``url``."""
    return Problem(("url",), exc.reason, exc.kind, exc.hint)


def _unknown_subscriber(uid: str) -> InvalidInput:
    return InvalidInput(
        f"no subscriber {uid!r}; create it first with POST /v1/subscribers",
        problems=[Problem(("subscriber",), "unknown subscriber", UNKNOWN)],
    )


async def create_endpoint(
    pool: Pool,
    tenant_id: str,
    allowed: Sequence[IPNetwork],
    fields: Mapping[str, Any],
    *,
    quota: int,
    vault: Vault,
) -> Row:
    """Register an endpoint after checking its URL against SSRF; it gets a new secret of
    the kind ``fields["signature"]`` names (``hmac`` unless given), or an ed25519 keypair.

    ``fields`` are validated with the types of :mod:`hookline.endpoint_fields`; a setting
    left out gets its default there. :class:`QuotaExceeded` when the tenant has ``quota``
    endpoints already (0: no limit).
    """
    fields = {**DEFAULTS, **fields}
    await _check_url(fields["url"], allowed)
    marked = list(fields["sensitive_headers"] or [])
    headers = _stored_headers(vault, tenant_id, fields["headers"], marked, None)
    secret = secrets.new_secret(fields["signature"])
    try:
        async with pool.acquire() as conn, conn.transaction():
            await make_room(conn, tenant_id, "endpoints", quota)
            created = row(
                await conn.fetchrow(
                    QUERIES["create_endpoint"],
                    tenant_id,
                    fields["subscriber"],
                    fields["url"],
                    fields["description"],
                    fields["event_types"],
                    fields["ordering"],
                    fields["on_exhausted"],
                    fields["payload"],
                    fields["format"],
                    fields["timeout"],
                    fields["rate_limit"],
                    fields["max_in_flight"],
                    headers,
                    fields["schema_version"],
                    vault.seal_secret(secret, tenant_id),
                    fields["retry_schedule"],
                    fields["disable_after"],
                    secrets.signature_kind(secret),
                    marked,
                )
            )
    except asyncpg.ForeignKeyViolationError:  # the subscriber was deleted meanwhile
        raise _unknown_subscriber(fields["subscriber"]) from None
    if created is None:
        raise _unknown_subscriber(fields["subscriber"])
    return created


async def get_endpoint(
    pool: Pool, tenant_id: str, endpoint_id: str, subscriber_id: str | None = None
) -> Row:
    """One endpoint; with ``subscriber_id`` (a portal session) only one of that subscriber's:
    another's is :class:`NotFound`, as are those of other tenants. The same holds for the
    ``subscriber_id`` of every function below."""
    found = row(await pool.fetchrow(QUERIES["get_endpoint"], tenant_id, endpoint_id, subscriber_id))
    if found is None:
        raise NotFound(f"no endpoint {endpoint_id!r}")
    return found


async def list_endpoints(
    pool: Pool,
    tenant_id: str,
    subscriber: str | None,
    cursor: str | None,
    limit: int,
    *,
    subscriber_id: str | None = None,
) -> list[Row]:
    """A page of endpoints: of the subscriber with the uid ``subscriber`` if given, and
    only of the subscriber with the id ``subscriber_id`` (a portal session) if given."""
    records = await pool.fetch(
        QUERIES["list_endpoints"], tenant_id, subscriber, cursor, limit, subscriber_id
    )
    return [dict(r) for r in records]


async def update_endpoint(
    pool: Pool,
    tenant_id: str,
    endpoint_id: str,
    allowed: Sequence[IPNetwork],
    changes: Mapping[str, Any],
    subscriber_id: str | None = None,
    *,
    vault: Vault,
) -> Row:
    """Change the fields in ``changes`` (any of :data:`PATCHABLE`) and leave the others.

    Custom ``headers`` are stored with credential values sealed (see
    :meth:`Vault.seal_headers`); a value of ``[redacted]`` keeps the stored one. Changing
    ``sensitive_headers`` alone seals (or unseals) the stored values it names.

    A new ``url`` is checked against SSRF as at registration. ``status`` may be set to
    ``paused`` or ``active``; a disabled endpoint can be made active again too: its
    health starts afresh (a failure then starts a new run) and the row's ``replay_since``
    says from when it missed events (None unless this re-enabled a disabled endpoint).

    Pausing needs nothing more: a claim parks the lanes of an endpoint that is not active,
    and an attempt already in flight finishes. Resuming locks the endpoint's parked lanes
    (in lane order, before the endpoint row, as every writer does) and points each at its
    head's next attempt, so what waited is sent at once and in order; a second look after
    the commit catches a lane a concurrent claim parked meanwhile.

    Changing ``ordering`` applies to events ingested from then on: deliveries already
    pending stay in the lanes of the old mode and drain there. So while they drain, a
    change to a stricter mode (e.g. ``none`` to ``strict``) does not yet order the new
    deliveries after the old ones; pause the endpoint until the old ones are sent if that
    matters. Moving the pending deliveries would renumber sequences receivers have seen.
    """
    unknown = sorted(set(changes) - set(PATCHABLE))
    if unknown:
        raise ValueError(f"not fields an endpoint update may change: {unknown}")
    if "url" in changes:
        await _check_url(changes["url"], allowed)
    if "headers" in changes or "sensitive_headers" in changes:
        changes = await _with_stored_headers(
            pool, vault, tenant_id, endpoint_id, changes, subscriber_id
        )
    values = [changes.get(name) for name in PATCHABLE]
    async with pool.acquire() as conn, conn.transaction():
        parked: list[int] = []
        if changes.get("status") == "active":
            records = await conn.fetch(
                QUERIES["lock_parked_lanes"], tenant_id, endpoint_id, subscriber_id
            )
            parked = [r["id"] for r in records]
        updated = row(
            await conn.fetchrow(
                QUERIES["update_endpoint"],
                tenant_id,
                endpoint_id,
                list(changes),
                *values,
                subscriber_id,
            )
        )
        if updated is None:
            raise NotFound(f"no endpoint {endpoint_id!r}")
        if parked:
            # same transaction: sees the endpoint active; leaves leased lanes to their holder
            # (each has something to send, so none is left empty)
            await lanes.reschedule(conn, parked)
    if changes.get("status") == "active":
        # A claim that read the endpoint as paused may have parked a lane after the lanes
        # above were looked for; it holds a share lock on the endpoint row until it
        # commits, so by now its park is committed, and from now on claims see it active.
        async with pool.acquire() as conn, conn.transaction():
            late = await conn.fetch(
                QUERIES["lock_parked_lanes"], tenant_id, endpoint_id, subscriber_id
            )
            if late:
                await lanes.reschedule(conn, [r["id"] for r in late])
    return updated


def missed_window(updated: Row) -> tuple[datetime, datetime] | None:
    """What an endpoint just re-enabled by :func:`update_endpoint` missed while it was
    disabled: from when it was disabled (else began failing) to now, the window a replay
    with ``missed`` sends again. None for any other change."""
    since = updated["replay_since"]
    return None if since is None else (since, updated["updated_at"])


async def delete_endpoint(
    pool: Pool, tenant_id: str, endpoint_id: str, subscriber_id: str | None = None
) -> None:
    """Delete an endpoint with its secrets, deliveries and their attempts.

    Nothing of it is sent once this returns: see :func:`delete_stopped_endpoints`.
    """
    if subscriber_id is not None:
        # an endpoint never changes subscriber, so checking first leaves no gap
        await get_endpoint(pool, tenant_id, endpoint_id, subscriber_id)
    if not await delete_stopped_endpoints(pool, tenant_id, endpoint_id=endpoint_id):
        raise NotFound(f"no endpoint {endpoint_id!r}")


async def delete_stopped_endpoints(
    pool: Pool,
    tenant_id: str,
    *,
    endpoint_id: str | None = None,
    subscriber_id: str | None = None,
) -> bool:
    """Delete one endpoint, or a subscriber with all of its endpoints; False if not found.

    A worker may hold a lane of an endpoint with several of its deliveries claimed, and
    sends them one after another under one lease. So that none is sent after this returns,
    the endpoints are stopped first (no new fan-out, no new claim), then the delete waits,
    with the lanes locked, until no worker holds a lease on any of them. That is as long
    as the requests in flight take, and as long as a dead worker's lease at worst.
    """
    deadline = time.monotonic() + _DELETE_PATIENCE
    scope = (tenant_id, endpoint_id, subscriber_id)
    while True:
        await pool.execute(QUERIES["stop_endpoints"], *scope)
        try:
            async with pool.acquire() as conn, conn.transaction():
                if subscriber_id is not None:
                    # the row lock keeps new endpoints of this subscriber out until commit
                    owner = await conn.fetchval(
                        QUERIES["lock_subscriber"], tenant_id, subscriber_id
                    )
                else:
                    owner = await conn.fetchval(QUERIES["endpoint_exists"], *scope[:2])
                if not owner:
                    return False
                await conn.execute(QUERIES["lock_tails_to_delete"], *scope)
                busy = await conn.fetchval(QUERIES["lock_lanes_to_delete"], *scope)
                active = await conn.fetchval(QUERIES["count_active_endpoints"], *scope)
                if busy is None and not active:
                    if subscriber_id is not None:
                        await conn.execute(QUERIES["delete_subscriber"], tenant_id, subscriber_id)
                    else:
                        await conn.execute(QUERIES["delete_endpoint"], *scope[:2])
                    return True
        except asyncpg.DeadlockDetectedError:
            pass  # an ingest that began before the stop locked lanes in between; go again
        if time.monotonic() > deadline:
            raise Conflict("the endpoint is still busy being delivered to; try again")
        await asyncio.sleep(_DELETE_POLL)


async def send_test_event(
    pool: Pool,
    tenant_id: str,
    endpoint_id: str,
    type_: str,
    data: dict[str, Any] | None,
    subscriber_id: str | None = None,
) -> tuple[str, str]:
    """Send an example event of ``type_`` to this endpoint only; return (event, delivery) ids.

    It is a real event, signed and delivered like any other, addressed to the endpoint's
    subscriber and fanned out to this endpoint alone. ``data`` defaults to the example of
    the type's schema version the endpoint pins (or the latest), else ``{}``; it is checked
    against that schema like ingested data.
    """
    endpoint = await get_endpoint(pool, tenant_id, endpoint_id, subscriber_id)
    if endpoint["status"] != "active":
        raise Conflict(
            f"endpoint {endpoint_id} is {endpoint['status']}; set its status to active first"
        )
    wanted = endpoint["event_types"]
    if wanted is not None and type_ not in wanted:
        msg = f"the endpoint does not receive {type_!r}; it receives {', '.join(wanted)}"
        raise InvalidInput(msg, problems=[Problem(("type",), msg)])
    pinned: int | None = endpoint["schema_version"]
    if data is None:
        example = await example_data(pool, tenant_id, type_, pinned)
        data = {} if example is None or example[1] is None else orjson.loads(example[1])
    [version] = await check_events(pool, tenant_id, [(type_, pinned, data)], [()])
    event = {"type": type_, "data": data, "subscriber": endpoint["subscriber"], "version": version}
    # one endpoint only: one delivery, never more than any fan-out quota
    accepted = await ingest_event(pool, tenant_id, event, only_endpoint=endpoint_id, max_fanout=0)
    delivery = await pool.fetchval(
        QUERIES["delivery_of_event"], tenant_id, accepted.id, endpoint_id
    )
    if delivery is None:  # stopped or changed between the check and the ingest
        raise Conflict(f"endpoint {endpoint_id} no longer takes this event; try again")
    return accepted.id, str(delivery)


async def _with_stored_headers(
    pool: Pool,
    vault: Vault,
    tenant_id: str,
    endpoint_id: str,
    changes: Mapping[str, Any],
    subscriber_id: str | None,
) -> dict[str, Any]:
    """``changes`` with ``headers`` as they are to be stored (and ``sensitive_headers``)."""
    current = await get_endpoint(pool, tenant_id, endpoint_id, subscriber_id)
    stored: dict[str, str] = orjson.loads(current["headers"])
    marked = list(changes.get("sensitive_headers", current["sensitive_headers"]) or [])
    wanted = changes.get("headers")
    if wanted is None:  # only the marks changed: the same headers, sealed by the new ones
        wanted = vault.open_headers(stored, tenant_id)
    return {
        **changes,
        "sensitive_headers": marked,
        "headers": _stored_headers(vault, tenant_id, wanted, marked, stored),
    }


def _stored_headers(
    vault: Vault,
    tenant_id: str,
    headers: Mapping[str, str],
    marked: Sequence[str],
    kept: Mapping[str, str] | None,
) -> dict[str, str]:
    try:
        return vault.seal_headers(headers, tenant_id, marked, kept)
    except KeyError as exc:
        name = str(exc.args[0])
        msg = (
            f"send the value of {name!r}: hookline never shows credential values, so "
            f"{REDACTED!r} only keeps one it already stores"
        )
        raise InvalidInput(msg, problems=[Problem(("headers", name), msg)]) from None
