"""Recording: results of attempts written back to Postgres, batched, in one transaction.

The transaction appends the attempts, then locks the batch's lanes (in the order every
writer uses; after the attempts, the heaviest rows, because a claim skips a held lane),
moves the deliveries, updates endpoint health, pauses or disables endpoints that asked for
it, releases the lanes to their next head and adds to the per-minute rollups. Once it has
committed, the lanes it left empty are looked at again (an ingest may have been writing
into them: hookline/lanes.py) and the operational notices it wrote are published.
Through a database outage a batch is retried (the leases outlast a short one); a result
the database refuses is split out and, at worst, stored without the receiver's response,
so it can never hold up the others or shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import asyncpg

from delivery.health import publish_notices_safely, record_health
from delivery.outcome import Outcome
from delivery.queries import SQL
from delivery.rollups import record_rollups
from hookline import lanes
from hookline.db import Pool
from hookline.metrics import Metrics, status_class
from hookline.settings import Settings

log = logging.getLogger(__name__)

# Errors that say the database is unreachable or busy, not that a result is bad.
OUTAGE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, restart in progress
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure
    # a pooled connection the server dropped (a restart) is handed out before asyncpg
    # has noticed: its next query fails with this, not with a connection error
    asyncpg.exceptions.InternalClientError,
)


class Recorder:
    def __init__(self, settings: Settings, pool: Pool, metrics: Metrics) -> None:
        self._settings = settings
        self._pool = pool
        self._metrics = metrics

    def count(self, batch: list[Outcome]) -> None:
        """Count recorded attempts in the metrics."""
        for outcome in batch:
            result = outcome.result
            if result is None:
                continue  # expired before it was sent: no attempt to count
            cls = status_class(result.status_code)
            self._metrics.deliveries.labels(outcome.decision.status, cls).inc()
            self._metrics.attempt_seconds.observe(result.duration_ms / 1000)

    async def record(self, batch: list[Outcome]) -> None:
        """Record a batch; through an outage, retry; one result the database refuses must
        not hold up the others (nor, through them, shutdown)."""
        while True:
            try:
                await self._record(batch)
                return
            except OUTAGE as exc:
                # keep the results: leases outlast a short outage, and if this process
                # dies first the lanes fall due again and are resent
                log.warning("recording %d results failed (%s); retrying", len(batch), exc)
                await asyncio.sleep(self._settings.sweep_interval)
            except Exception as exc:
                if len(batch) > 1:
                    log.warning("a result in a batch of %d was refused (%s)", len(batch), exc)
                    for outcome in batch:
                        await self.record([outcome])
                    return
                try:
                    await self._record_stripped(batch[0], exc)
                    return
                except OUTAGE as outage:  # then the database went away: retry it all
                    log.warning("recording a result failed (%s); retrying", outage)
                    await asyncio.sleep(self._settings.sweep_interval)

    async def _record_stripped(self, outcome: Outcome, exc: Exception) -> None:
        """Keep the facts of an attempt whose details the database refused: what the
        receiver sent is dropped, the outcome and its timing stay."""
        result = outcome.result
        if result is not None:
            note = f"the response could not be stored ({type(exc).__name__})"
            why = f"{result.error}; {note}" if result.error else note
            result = replace(result, response_headers={}, response_body="", error=why[:500])
        log.error(
            "recording delivery %s failed (%s); storing it without the response",
            outcome.job["delivery_id"],
            exc,
        )
        try:
            await self._record([replace(outcome, request_headers={}, result=result)])
        except OUTAGE:
            raise
        except Exception:
            # nothing more to drop: the lease runs out and another worker tries again
            log.exception("could not record delivery %s at all", outcome.job["delivery_id"])

    async def _record(self, batch: list[Outcome]) -> None:
        columns: list[list[Any]] = [[] for _ in range(14)]
        for o in batch:
            job, result, decision = o.job, o.result, o.decision
            attempted = result is not None
            row = (
                job["delivery_id"],
                job["lane_id"],
                job["lease_no"],
                decision.status,
                job["attempts"] + 1 if attempted else job["attempts"],
                decision.retries_used if attempted else job["retries_used"],
                decision.next_attempt_at,
                result.started_at if result else None,
                result.duration_ms if result else 0.0,
                result.status_code if result else None,
                result.error if result else decision.reason,
                o.request_headers,
                result.response_headers if result else {},
                result.response_body if result else "",
            )
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        held = dict(zip(columns[1], columns[2], strict=True))  # lane -> lease, once each
        held_lanes, leases = list(held), list(held.values())
        (ids, lane_ids, lease_nos, statuses, numbers, retries, next_at, started, durations,
         codes, errors, sent, got, bodies) = columns  # fmt: skip
        async with self._pool.acquire() as conn, conn.transaction():
            # first what needs no lane: the attempts, the heaviest rows
            await conn.execute(
                SQL["append_attempts"],
                ids, numbers, started, durations, codes, errors, sent, got, bodies, next_at,
            )  # fmt: skip
            # then the lanes, held from here to the commit (claims skip them), before any
            # row they guard
            await lanes.lock(conn, held_lanes)
            await conn.execute(
                SQL["move_deliveries"],
                ids, lane_ids, lease_nos, statuses, numbers, retries, next_at, codes, errors,
            )  # fmt: skip
            # endpoint rows next, each statement in id order (as record_health locks them)
            notices = await record_health(conn, batch, self._settings.endpoint_disable_after)
            for o in sorted(batch, key=lambda o: str(o.job["endpoint_id"])):
                if o.decision.endpoint_action is not None:
                    status = "disabled" if o.decision.endpoint_action == "disable" else "paused"
                    await conn.execute(
                        SQL["set_endpoint_status"],
                        o.job["endpoint_id"],
                        status,
                        o.decision.reason,
                        o.result.status_code if o.result else None,
                    )
                    notices += status == "disabled"
            empty = await conn.fetch(SQL["release_lanes"], held_lanes, leases)
            # last: rollup rows are the hottest, so they are held for the least time
            await record_rollups(conn, batch)
        # committed: a lane left empty may have had an ingest writing into it meanwhile
        await lanes.wake(self._pool, [r["id"] for r in empty])
        if notices:  # committed: tell the operational endpoints now, not at the next sweep
            await publish_notices_safely(self._pool)
