"""The replayer: runs replay jobs (``hookline.replays`` makes them) in the worker, each at
its rate.

Every ``sweep_interval`` it leases the running replays nobody holds (up to ``_MAX_JOBS`` at
once per worker) and runs one task per replay. A task queues a chunk of the replay's
deliveries every tick, ``rate x tick`` at a time, and rings the doorbell so dispatchers
send them; the chunk and the replay's progress commit together, and renew the lease. So a
replay of 100k deliveries reaches the lanes at its rate, beside live traffic, rather than
all at once, and a worker that dies mid-job leaves it to be taken over when its lease runs
out, at the chunk after the last one committed.

A paused or cancelled replay is noticed at its next chunk, which then does nothing; the
task gives the lease back and ends. Resuming makes it due for the next sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from delivery.queries import SQL
from hookline import lanes
from hookline.db import Pool
from hookline.doorbell import Doorbell
from hookline.replays import ReplayFilter
from hookline.settings import Settings

log = logging.getLogger(__name__)

_TICK = 0.25  # seconds between chunks at least (longer below 4 deliveries per second)
_MAX_JOBS = 4  # replays one worker runs at once; more wait for the next sweep or worker
_DB_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a pooled connection a Postgres restart dropped
)


def pace(rate: int) -> tuple[int, float]:
    """The chunk size and the seconds between chunks that queue ``rate`` per second."""
    chunk = max(1, math.ceil(rate * _TICK))
    return chunk, chunk / rate


class Replayer:
    def __init__(self, settings: Settings, pool: Pool, doorbell: Doorbell) -> None:
        self._settings = settings
        self._pool = pool
        self._doorbell = doorbell
        self._jobs: dict[str, asyncio.Task[None]] = {}
        # a chunk renews the lease at least once a second (the slowest pace); two missed
        # renewals and the margin, and the job is taken for abandoned
        self._lease = 2.0 + settings.lease_margin

    async def run(self) -> None:
        """Lease and run replays until cancelled; then stop the jobs and give them back."""
        try:
            while True:
                free = _MAX_JOBS - len(self._jobs)
                if free > 0:
                    await self._take(free)
                await asyncio.sleep(self._settings.sweep_interval)
        finally:
            tasks = list(self._jobs.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _take(self, free: int) -> None:
        try:
            jobs = await lease_replays(self._pool, free, self._lease)
        except _DB_ERRORS as exc:
            log.warning("could not look for replays to run (%s); trying again", exc)
            return
        for job in jobs:
            task = asyncio.create_task(self._run_job(job), name=f"hookline-replay-{job.id}")
            self._jobs[job.id] = task
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._jobs = {key: t for key, t in self._jobs.items() if t is not task}

    async def _run_job(self, job: Job) -> None:
        chunk, interval = pace(job.rate)
        schedule = self._settings.retry_schedule
        next_at = time.monotonic()
        more = True
        try:
            while more:
                try:
                    done = await run_chunk(self._pool, job, chunk, self._lease, schedule)
                except _DB_ERRORS as exc:
                    # nothing of the chunk was kept; its lease may run out meanwhile, and
                    # then the next chunk finds the job taken over and stops
                    log.warning("replay %s: a chunk failed (%s); trying again", job.id, exc)
                else:
                    more = done.more
                    if done.queued:
                        self._doorbell.ring()
                # due one interval after the last one was due, so the time a chunk takes
                # does not lower the rate; after a stall, go on from now (no burst)
                next_at = max(next_at + interval, time.monotonic())
                if more:
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            with contextlib.suppress(*_DB_ERRORS):
                # give it back at once (a finished one has no lease left to give)
                await asyncio.shield(release_replay(self._pool, job))


@dataclass
class Job:
    """A replay leased by a worker, with where it is."""

    id: str
    tenant_id: str
    filter: ReplayFilter
    until: datetime  # the effective end: never after the replay was created
    rate: int
    stage: str
    after_id: str | None
    lease_no: int


async def lease_replays(pool: Pool, limit: int, lease: float) -> list[Job]:
    """Lease up to ``limit`` running replays no live worker holds, for ``lease`` seconds."""
    records = await pool.fetch(SQL["lease_replays"], limit, lease)
    return [
        Job(
            id=r["id"],
            tenant_id=r["tenant_id"],
            filter=ReplayFilter(
                endpoint=r["endpoint_id"],
                types=r["event_types"],
                statuses=r["statuses"],
                since=r["since"],
                missed=r["missed"],
            ),
            until=r["until"],
            rate=r["rate"],
            stage=r["stage"],
            after_id=r["after_id"],
            lease_no=r["lease_no"],
        )
        for r in records
    ]


@dataclass(frozen=True)
class Chunk:
    """What one chunk did: ``queued`` deliveries; ``more`` False when the job is no longer
    this worker's to run (it is done, paused or cancelled, or another worker took it)."""

    queued: int
    more: bool


class _Stopped(Exception):
    """The replay is no longer ours to advance; the chunk is rolled back."""


async def run_chunk(pool: Pool, job: Job, limit: int, lease: float, schedule: list[float]) -> Chunk:
    """Queue the job's next ``limit`` deliveries at most and record the progress, in one
    transaction, renewing the lease for ``lease`` seconds; ``job`` moves on with it.

    A replay paused, cancelled or taken over by another worker (whose lease is newer)
    meanwhile gets nothing queued. Lanes are locked first, in the order every writer uses,
    and the replay row last, so this cannot deadlock with ingest, recording or a delete.
    ``schedule`` is the installation's retry schedule.
    """
    f = job.filter
    unsure: list[int] = []  # lanes to look at again once committed (hookline/lanes.py)
    try:
        async with pool.acquire() as conn, conn.transaction():
            if job.stage == "deliveries":
                after_id, queued, exhausted = await _requeue(conn, job, limit, schedule, unsure)
            else:
                after_id, queued, exhausted = await _queue_missed(conn, job, limit, unsure)
            stage = job.stage
            finished = exhausted and (stage == "missed" or not f.missed)
            if exhausted and not finished:
                stage, after_id = "missed", None
            state = await conn.fetchval(
                SQL["advance_replay"],
                job.id,
                job.lease_no,
                stage,
                after_id,
                queued,
                finished,
                lease,
            )
            if state is None:
                raise _Stopped
    except _Stopped:
        return Chunk(0, more=False)
    await lanes.wake(pool, unsure)
    job.stage, job.after_id = stage, after_id
    return Chunk(queued, more=state == "running")


async def _requeue(
    conn: PoolConnectionProxy, job: Job, limit: int, schedule: list[float], unsure: list[int]
) -> tuple[str | None, int, bool]:
    f = job.filter
    picked = await conn.fetch(
        SQL["replay_deliveries_chunk"],
        job.tenant_id,
        f.endpoint,
        f.status_list,
        f.type_list,
        f.since,
        job.until,
        job.after_id,
        limit,
    )
    if not picked:
        return job.after_id, 0, True
    held = sorted({r["lane_id"] for r in picked})
    await lanes.lock(conn, held)
    requeued = await conn.fetch(
        SQL["requeue_deliveries"],
        job.tenant_id,
        [r["id"] for r in picked],
        f.status_list,
        schedule,
    )
    # point idle lanes at their head (a re-queued delivery can come before the old head)
    unsure += await lanes.reschedule(conn, held)
    return picked[-1]["id"], len(requeued), len(picked) < limit


async def _queue_missed(
    conn: PoolConnectionProxy, job: Job, limit: int, unsure: list[int]
) -> tuple[str | None, int, bool]:
    f = job.filter
    done = await conn.fetchrow(
        SQL["queue_missed_events"],
        job.tenant_id,
        f.endpoint,
        f.type_list,
        f.since,
        job.until,
        job.after_id,
        limit,
    )
    assert done is not None
    unsure += done["unsure"]
    last: str | None = done["last_id"] or job.after_id
    return last, done["queued"], done["picked"] < limit


async def release_replay(pool: Pool, job: Job) -> None:
    """Give the job back (the worker stops), so another worker can take it at once."""
    await pool.execute(SQL["release_replay"], job.id, job.lease_no)
