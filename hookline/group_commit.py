"""Group commit: concurrent single-event ingests of a tenant share one statement and commit.

A commit costs a round trip and a WAL flush whatever it carries, so one statement per
event bounds ingest at what one connection can commit. Here each tenant has at most one
ingest statement in flight per process: the first request starts it at once (nothing
waits for a group to fill, so a lone request pays nothing), and the requests that arrive
while it runs are written together by the next one. Under load the groups grow by
themselves; at low load they are groups of one.

Every request is still answered only after the commit that holds its event, and each is
judged alone inside the statement (``ingest_events`` in events.sql): one event's unknown
subscriber, fan-out quota or taken producer id is that request's answer and leaves its
neighbours written. Only a subscriber or endpoint deleted while the statement ran fails a
whole statement; the group is then tried once more (by then each culprit is an ordinary
unknown subscriber or a match no longer made), and a second such failure is every
member's answer.

Tenants do not share statements, so one tenant's costly fan-out never holds up another
tenant's group, and a hot lane's tail is locked once per group rather than once per event.

A statement outlives a request that goes away (the answer is shielded), and shutdown
needs nothing of its own: the pool closes only once the statements in flight have
returned their connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hookline import lanes
from hookline.db import Pool
from hookline.errors import Conflict
from hookline.events import Accepted, Loc, Written, refusal, write_events

MAX_GROUP = 100  # events in one statement: bounds its duration, its locks and its fan-out
_LOCS: list[Loc] = [()]


@dataclass(slots=True)
class _Waiting:
    event: dict[str, Any]
    answer: asyncio.Future[Accepted]


def _retrieved(answer: asyncio.Future[Accepted]) -> None:
    if not answer.cancelled():
        answer.exception()


class GroupCommit:
    def __init__(
        self, pool: Pool, max_fanout: int, committed: Callable[[], None] = lambda: None
    ) -> None:
        """``committed`` is called after each statement that wrote something (the workers'
        doorbell: one ring for the whole group)."""
        self._pool = pool
        self._max_fanout = max_fanout
        self._committed = committed
        self._waiting: dict[str, list[_Waiting]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._looks: set[asyncio.Task[int]] = set()
        self.statements = 0  # ingest statements run, for tests and metrics
        self.largest = 0  # the most events one statement carried

    async def ingest(self, tenant_id: str, event: dict[str, Any]) -> Accepted:
        """Commit ``event`` with whatever else the tenant is sending now; durable on return.
        Raises the event's own refusal (:class:`hookline.errors.HooklineError`)."""
        waiting = _Waiting(event, asyncio.get_running_loop().create_future())
        # an answer nobody awaits any more (its client left) is still looked at once
        waiting.answer.add_done_callback(_retrieved)
        self._waiting.setdefault(tenant_id, []).append(waiting)
        if tenant_id not in self._writers:
            self._writers[tenant_id] = asyncio.create_task(self._write(tenant_id))
        # shielded: a client that goes away does not cancel the group's statement, and
        # its event is committed (or not) like its neighbours'
        return await asyncio.shield(waiting.answer)

    async def _write(self, tenant_id: str) -> None:
        try:
            # no await between finding the queue empty and leaving the table below, so a
            # request that arrives after this loop ends always starts a new writer
            while queue := self._waiting.get(tenant_id):
                group = queue[:MAX_GROUP]
                del queue[:MAX_GROUP]
                if not queue:
                    del self._waiting[tenant_id]
                await self._commit(tenant_id, group)
        finally:
            del self._writers[tenant_id]

    async def _commit(self, tenant_id: str, group: list[_Waiting]) -> None:
        events = [w.event for w in group]
        self.statements += 1
        self.largest = max(self.largest, len(group))
        unsure: list[int] = []
        try:
            try:
                written = await self._statement(tenant_id, events, unsure)
            except Conflict:
                written = await self._statement(tenant_id, events, unsure)
        except BaseException as exc:
            for w in group:
                if not w.answer.done():
                    w.answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        if any(row.deliveries for row in written):
            self._committed()
        for w, row, event in zip(group, written, events, strict=True):
            if w.answer.done():
                continue
            error = refusal([row], [event], _LOCS, self._max_fanout)
            if error is None:
                w.answer.set_result(row.accepted())
            else:
                w.answer.set_exception(error)
        if unsure:
            # the look at busy lanes after the commit (hookline/lanes.py) matters only to
            # the worker: neither these answers nor the next group wait for it
            look = asyncio.create_task(lanes.wake(self._pool, unsure))
            self._looks.add(look)
            look.add_done_callback(self._looks.discard)

    async def _statement(
        self, tenant_id: str, events: list[dict[str, Any]], unsure: list[int]
    ) -> list[Written]:
        return await write_events(
            self._pool,
            tenant_id,
            events,
            range(len(events)),
            max_fanout=self._max_fanout,
            unsure=unsure,
        )
