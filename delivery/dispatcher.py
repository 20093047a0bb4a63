"""The dispatcher: claims due lanes from Postgres, sends their heads, records the results.

One dispatcher runs per worker process, as three loops sharing an in-memory queue:

    claim loop     lease up to ``claim_batch`` due lanes with up to ``lane_batch`` due
                   deliveries each, within their endpoints' limits (in-flight caps and
                   rate limits, decided under a lock all workers' claims take in turn:
                   :mod:`delivery.pacing`), start one task per lane, never more than
                   ``worker_concurrency`` lanes in flight; when nothing is due, sleep
                   until the doorbell rings, a result frees a lane, the next lane falls
                   due, or ``sweep_interval`` passes (the sweep that re-finds work nobody
                   was woken for: a flushed Redis, a dead worker's expired lease)
    lane tasks     send a lane's deliveries one after another in sequence order, each
                   under one total deadline, stopping at the first failure, once the
                   first deadline has passed (the lease covers two deadlines), or once
                   the worker is stopping (the rest are handed back, not started)
    record loop    hands every result that has piled up to :class:`Recorder`, which
                   writes them in one transaction and releases the lanes to their next
                   head

If the process dies anywhere, Postgres still holds every lane with its lease; a lease that
runs out makes the lane due again, so only a request in flight at the death is repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

import asyncpg
import httpx

from delivery.attempt import redacted, send
from delivery.outcome import AttemptResult, Outcome
from delivery.pacing import Candidate, Pace, admit, advance, tenant_rooms
from delivery.queries import SQL
from delivery.recorder import OUTAGE, Recorder
from delivery.request import build_request
from delivery.retries import Decision, decide
from hookline import lanes
from hookline.db import Pool
from hookline.metrics import Metrics
from hookline.settings import Settings
from hookline.vault import Vault

log = logging.getLogger(__name__)

_RECORD_BATCH = 500
_UNPARK_EVERY = 30.0  # seconds between looks for lanes parked with a stale view
# how far back those looks search for deliveries a dead process left unscheduled
# (hookline/lanes.py): a few looks' worth, so one failed look loses nothing
_STRANDED_WINDOW = 4 * _UNPARK_EVERY
# A deferred lane (its endpoint could take no more) is woken when a lane of its endpoint is
# released; this many sweep intervals at the latest (a lease that ran out frees no lane).
_DEFER_SWEEPS = 5
# Due lanes a claim looks at per tenant, in claim batches: enough to find those it may send
# behind lanes it defers, few enough that a tenant's backlog costs a claim little.
_WINDOW_BATCHES = 2


# What claiming and looking for due work may meet: logged, retried after a sweep, never the
# end of the claim loop (a worker whose loop died would stay idle until restarted).
_UNAVAILABLE = (*OUTAGE, asyncpg.PostgresError)

_EXPIRED = Decision("cancelled", 0, None, None, "the event expired before it was delivered")


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        transport: httpx.AsyncBaseTransport,
        metrics: Metrics,
    ) -> None:
        settings.require("secret_key")
        self._settings = settings
        self._pool = pool
        self._transport = transport
        self._metrics = metrics
        self._vault = Vault.from_settings(settings)
        self._recorder = Recorder(settings, pool, metrics)
        self._outcomes: asyncio.Queue[list[Outcome]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._slot = asyncio.Event()
        # lane task -> (endpoint id, tenant id)
        self._in_flight: dict[asyncio.Task[None], tuple[str, str]] = {}
        self._busy: dict[str, int] = {}  # endpoint id -> its lanes this worker has in flight
        self._tenant_busy: dict[str, int] = {}  # tenant id -> its lanes in flight here
        # one endpoint may hold at most a quarter of this worker's slots
        self._local_cap = max(1, settings.worker_concurrency // 4)
        self._next_unpark = 0.0
        self._stopping = False

    def wake(self) -> None:
        """Look for due work now (the doorbell rang, or a lane was released)."""
        self._wake.set()

    async def run(self) -> None:
        """Run until :meth:`stop`; then finish in-flight attempts and record them."""
        recorder = asyncio.create_task(self._record_loop(), name="hookline-recorder")
        try:
            await self._claim_loop()
        finally:
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))
            await self._outcomes.join()
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder

    def stop(self) -> None:
        """Stop claiming; attempts in flight run to their deadline and are recorded, and
        deliveries claimed behind them are handed back unsent."""
        self._stopping = True
        self._wake.set()
        self._slot.set()

    # -- claiming ---------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        settings = self._settings
        while not self._stopping:
            free = settings.worker_concurrency - len(self._in_flight)
            if free <= 0:
                self._slot.clear()
                await self._slot.wait()
                continue
            want = min(free, settings.claim_batch)
            self._wake.clear()
            try:
                jobs = await self._claim(want)
            except _UNAVAILABLE as exc:
                log.warning("claim failed (%s); retrying after %ss", exc, settings.sweep_interval)
                await self._sleep(settings.sweep_interval)
                continue
            runs: dict[int, list[asyncpg.Record]] = {}
            for job in jobs:  # ordered by lane, then sequence
                runs.setdefault(job["lane_id"], []).append(job)
            for run in runs.values():
                endpoint, owner = run[0]["endpoint_id"], run[0]["tenant_id"]
                self._busy[endpoint] = self._busy.get(endpoint, 0) + 1
                self._tenant_busy[owner] = self._tenant_busy.get(owner, 0) + 1
                task = asyncio.create_task(self._run_lane(run))
                self._in_flight[task] = (endpoint, owner)
                task.add_done_callback(self._done)
            if len(runs) < want:
                await self._sleep(await self._idle_time())
            await self._unpark_now_and_then()

    def _saturated(self) -> list[str]:
        """Endpoints holding as many of this worker's slots as one endpoint may."""
        return [e for e, n in self._busy.items() if n >= self._local_cap]

    def _rooms(self) -> tuple[dict[str, int], int]:
        """How many more lanes each tenant may take here (see :func:`tenant_rooms`)."""
        settings = self._settings
        return tenant_rooms(
            self._tenant_busy, settings.worker_concurrency, settings.worker_tenant_share
        )

    async def _claim(self, want: int) -> list[asyncpg.Record]:
        """Lease up to ``want`` due lanes within their endpoints' limits and their tenants'
        shares; return the deliveries to send, by lane in sequence order."""
        settings = self._settings
        rooms, newcomer = self._rooms()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(SQL["claim_lock"])
            picked = await conn.fetch(
                SQL["pick_lanes"],
                want,
                self._saturated(),
                list(rooms),
                list(rooms.values()),
                newcomer,
                _WINDOW_BATCHES * settings.claim_batch,
            )
            held = [r["lane_id"] for r in picked if r["held"]]
            if held:
                await conn.execute(
                    SQL["defer_lanes"], held, _DEFER_SWEEPS * settings.sweep_interval
                )
            open_ = [r for r in picked if not r["held"]]
            if not open_:
                return []
            admission = admit(
                [
                    Candidate(
                        r["lane_id"],
                        r["endpoint_id"],
                        r["tenant_id"],
                        r["active"],
                        r["cap"],
                        r["busy"],
                        r["rate"],
                        r["tat"],
                    )
                    for r in open_
                ],
                want=want,
                now=open_[0]["now"],
                lane_batch=settings.lane_batch,
                local_busy=self._busy,
                local_cap=self._local_cap,
                tenant_room={r["tenant_id"]: rooms.get(r["tenant_id"], newcomer) for r in open_},
            )
            if admission.park:
                await conn.execute(SQL["park_lanes"], admission.park)
            if not admission.lease:
                return []
            jobs = await conn.fetch(
                SQL["lease_lanes"],
                list(admission.lease),
                list(admission.lease.values()),
                settings.delivery_timeout,
                settings.lease_margin,
                settings.retry_schedule,
            )
            paces = self._paces(open_, jobs)
            if paces:
                await conn.execute(
                    SQL["pace_endpoints"],
                    list(paces),
                    [p.tat for p in paces.values()],
                    [p.free_at for p in paces.values()],
                )
        # committed: a lane leased with nothing in it was parked, perhaps while an ingest
        # was writing into it (hookline/lanes.py); so was one skipped, harmlessly
        sent = {job["lane_id"] for job in jobs}
        await lanes.wake(self._pool, [lane for lane in admission.lease if lane not in sent])
        return jobs

    @staticmethod
    def _paces(picked: list[asyncpg.Record], jobs: list[asyncpg.Record]) -> dict[str, Pace]:
        """The new pace of every rate-limited endpoint this claim handed deliveries to."""
        limited = {r["endpoint_id"]: r for r in picked if r["rate"] is not None}
        sent: dict[str, int] = {}
        for job in jobs:
            if job["endpoint_id"] in limited:
                sent[job["endpoint_id"]] = sent.get(job["endpoint_id"], 0) + 1
        return {
            endpoint: advance(
                limited[endpoint]["rate"], limited[endpoint]["tat"], limited[endpoint]["now"], n
            )
            for endpoint, n in sent.items()
        }

    async def _unpark_now_and_then(self) -> None:
        if time.monotonic() < self._next_unpark:
            return
        self._next_unpark = time.monotonic() + _UNPARK_EVERY
        try:
            await self._pool.execute(SQL["unpark_resumed"])
            stranded = await lanes.wake_stranded(self._pool, _STRANDED_WINDOW)
        except _UNAVAILABLE as exc:
            log.warning("looking for lanes parked by mistake failed (%s)", exc)
            return
        if stranded:
            log.warning("scheduled %d lanes left with work and no due time", stranded)

    async def _idle_time(self) -> float:
        """Seconds until the next lane falls due, at most one sweep interval."""
        interval = self._settings.sweep_interval
        try:
            rooms, _ = self._rooms()
            full = [tenant for tenant, room in rooms.items() if room <= 0]
            due: datetime | None = await self._pool.fetchval(SQL["next_ready_at"], full)
        except _UNAVAILABLE:
            return interval
        if due is None:
            return interval
        return max(0.0, min(interval, (due - datetime.now(UTC)).total_seconds()))

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0 or self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def _done(self, task: asyncio.Task[None]) -> None:
        held = self._in_flight.pop(task, None)
        if held is not None:
            _release(self._busy, held[0])
            _release(self._tenant_busy, held[1])
        self._slot.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("attempt task crashed", exc_info=task.exception())

    # -- sending ----------------------------------------------------------------------

    async def _run_lane(self, run: list[asyncpg.Record]) -> None:
        """Send a lane's claimed deliveries in order; record them together."""
        deadline = run[0]["timeout"] or self._settings.delivery_timeout
        started = time.monotonic()
        outcomes: list[Outcome] = []
        for job in run:
            if outcomes and (self._stopping or time.monotonic() - started > deadline):
                # another attempt could outlast the lease, or the worker is shutting down:
                # recording releases the lane, and the rest wait for the next claim
                break
            outcome = await self._outcome(job, deadline)
            outcomes.append(outcome)
            if outcome.decision.status != "succeeded":
                break  # the head failed: nothing after it may overtake it
        await self._outcomes.put(outcomes)

    async def _outcome(self, job: asyncpg.Record, deadline: float) -> Outcome:
        """What became of one delivery. Nothing about it (its expiry, body, headers,
        policy) may stop its lane: any error of ours costs this delivery an attempt with
        the error recorded (and in the end a dead letter someone sees), never a lane left
        leased and retried forever."""
        try:
            if job["expired"]:
                # never sent late: the producer said the event is stale by now
                return Outcome(job, {}, None, _EXPIRED)
            return await self._attempt(job, deadline)
        except Exception as exc:
            log.exception("preparing delivery %s failed", job["delivery_id"])
            error = f"internal error: {type(exc).__name__}: {exc}"[:500]
            failed = AttemptResult(datetime.now(UTC), 0.0, error=error)
            return Outcome(job, {}, failed, self._decide_safely(job, failed))

    async def _attempt(self, job: asyncpg.Record, deadline: float) -> Outcome:
        settings = self._settings
        headers, body = build_request(self._settings, self._vault, job)
        result = await send(
            self._transport,
            job["url"],
            headers,
            body,
            deadline=deadline,
            max_bytes=settings.response_max_bytes,
        )
        shown = redacted(headers, job["sensitive_headers"])
        return Outcome(job, shown, result, self._decide(job, result))

    def _decide(self, job: asyncpg.Record, result: AttemptResult) -> Decision:
        settings = self._settings
        return decide(
            status_code=result.status_code,
            retry_after=result.retry_after,
            retries_used=job["retries_used"],
            # resolved by the claim (hookline_retry_schedule): the endpoint's, else the
            # tenant's, else the installation's
            schedule=job["retry_schedule"],
            on_exhausted=job["on_exhausted"],
            retry_after_cap=settings.retry_after_cap,
            now=datetime.now(UTC),
        )

    def _decide_safely(self, job: asyncpg.Record, result: AttemptResult) -> Decision:
        """:meth:`_decide`, or when even the policy cannot be read, the installation's
        schedule: a delivery always moves on."""
        try:
            return self._decide(job, result)
        except Exception:
            log.exception("judging delivery %s failed", job["delivery_id"])
            settings = self._settings
            return decide(
                status_code=None,
                retry_after=None,
                retries_used=int(job["retries_used"] or 0),
                schedule=settings.retry_schedule,
                on_exhausted="dead_letter",
                retry_after_cap=settings.retry_after_cap,
                now=datetime.now(UTC),
            )

    # -- recording --------------------------------------------------------------------

    async def _record_loop(self) -> None:
        while True:
            runs = [await self._outcomes.get()]
            while len(runs) < _RECORD_BATCH and not self._outcomes.empty():
                runs.append(self._outcomes.get_nowait())
            batch = [outcome for run in runs for outcome in run]
            await self._recorder.record(batch)
            self._recorder.count(batch)
            for _ in runs:
                self._outcomes.task_done()
            self.wake()  # released lanes may have their next head due now


def _release(counts: dict[str, int], key: str) -> None:
    """One fewer for ``key``, dropping it at zero (the maps stay as small as what is in
    flight)."""
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
