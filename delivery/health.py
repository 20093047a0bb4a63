"""Endpoint health: failing runs, warnings, disabling, and the operational events about them.

Recording a batch of attempt results also keeps each endpoint's failing run (failures in a
row, since when) and writes operational notices into an outbox table in the same
transaction (see ``sql/health.sql``)::

    endpoint.failing    the run has lasted 50%, then 90%, of the disable period
    endpoint.disabled   it reached 100% (or the endpoint answered 410 Gone): disabled
    endpoint.recovered  the first success after a warning, a disable or a long run
    delivery.failed     a delivery was dead-lettered

:func:`publish_notices` then turns notices into events delivered, signed like any other,
to the one endpoint the tenant names as its operational endpoint; it runs after each
recording that wrote notices and on the worker's sweep, so a crash in between loses none.
Notices are written only for a tenant that has an operational endpoint, and never about
that endpoint itself (a failing operational endpoint would otherwise report on itself
forever); publishing checks both again, as the tenant may have changed its settings since.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import asyncpg

from delivery.outcome import Outcome
from delivery.queries import SQL
from hookline import lanes
from hookline.db import Connection, Pool
from hookline.errors import HooklineError
from hookline.events import ingest_events

log = logging.getLogger(__name__)

_PUBLISH_BATCH = 500  # notices per transaction (ingest takes up to 1000 events at once)


async def record_health(conn: Connection, batch: Sequence[Outcome], disable_after: float) -> int:
    """Update the health of the batch's endpoints and write the notices that calls for, in
    the caller's transaction; ``disable_after`` is the installation's disable period.
    Returns how many notices were written."""
    columns: list[list[Any]] = [[] for _ in range(8)]
    for o in batch:
        result = o.result
        if result is None:
            continue  # an expired event: nothing was sent, nothing learnt
        job = o.job
        row = (
            job["endpoint_id"],
            job["delivery_id"],
            job["lane_id"],
            job["lease_no"],
            o.decision.status,
            result.started_at,
            result.status_code,
            result.error,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    if not columns[0]:
        return 0
    written: int = await conn.fetchval(SQL["record_health"], *columns, disable_after)
    return written


async def publish_notices(pool: Pool) -> int:
    """Turn pending notices into events for each tenant's operational endpoint; return
    how many notices were handled (0 also when another worker is publishing)."""
    handled = 0
    while True:
        unsure: list[int] = []  # lanes to look at again once committed (hookline/lanes.py)
        async with pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(SQL["publish_lock"]):
                return handled
            notices = await conn.fetch(SQL["take_notices"], _PUBLISH_BATCH)
            for (tenant_id, endpoint_id), events in _events_by_destination(notices).items():
                try:
                    async with conn.transaction():  # a savepoint: one tenant's problem
                        await ingest_events(
                            conn,  # type: ignore[arg-type]  # a pool proxy is a Connection
                            tenant_id,
                            events,
                            only_endpoint=endpoint_id,
                            max_fanout=0,  # to one endpoint: a delivery per notice
                            unsure=unsure,
                        )
                except HooklineError as exc:  # its operational endpoint was just deleted
                    log.warning("operational events for %s dropped: %s", tenant_id, exc)
            await conn.execute(SQL["drop_notices"], [n["id"] for n in notices])
        await lanes.wake(pool, unsure)
        handled += len(notices)
        if len(notices) < _PUBLISH_BATCH:
            return handled


def _events_by_destination(
    notices: Sequence[asyncpg.Record],
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The events to ingest, by (tenant, operational endpoint), in notice order."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for n in notices:
        destination = n["operational_endpoint"]
        if destination is None or destination == n["endpoint_id"]:
            continue  # nobody to tell, or it is about the operational endpoint itself
        event = {"type": n["type"], "subject": n["endpoint_id"], "data": n["data"]}
        out.setdefault((n["tenant_id"], destination), []).append(event)
    return out


async def publish_notices_safely(pool: Pool) -> int:
    """:func:`publish_notices`, logging instead of raising: what fails stays in the outbox
    for the next sweep."""
    try:
        return await publish_notices(pool)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("publishing operational notices failed (%s); the sweep tries again", exc)
    except Exception:
        log.exception("publishing operational notices failed; the sweep tries again")
    return 0
