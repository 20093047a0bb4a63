"""The replayer: runs replay jobs (``hookline.replays``) in the worker, each at its rate.

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

import asyncpg

from hookline import replays
from hookline.db import Pool
from hookline.doorbell import Doorbell
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
            jobs = await replays.lease_replays(self._pool, free, self._lease)
        except _DB_ERRORS as exc:
            log.warning("could not look for replays to run (%s); trying again", exc)
            return
        for job in jobs:
            task = asyncio.create_task(self._run_job(job), name=f"hookline-replay-{job.id}")
            self._jobs[job.id] = task
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._jobs = {key: t for key, t in self._jobs.items() if t is not task}

    async def _run_job(self, job: replays.Job) -> None:
        chunk, interval = pace(job.rate)
        schedule_len = len(self._settings.retry_schedule)
        next_at = time.monotonic()
        more = True
        try:
            while more:
                try:
                    done = await replays.run_chunk(
                        self._pool, job, chunk, self._lease, schedule_len
                    )
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
                await asyncio.shield(replays.release_replay(self._pool, job))
