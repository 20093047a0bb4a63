"""Chaos for real worker processes, and the ledger that judges it.

- :class:`Ledger` is the receiver: it answers every delivery after a moment, fails about a
  fifth of them once or twice with a 500, and writes down every request: which endpoint,
  event, lane and sequence, which worker process sent it, how it was answered. It flags an
  order violation the moment a request of a `strict` or `keyed` lane overtakes its head or
  arrives while another request of the lane is still unanswered.
- :class:`tests.processes.Fleet` runs the tagged ``hookline worker`` processes to kill.
- :func:`produce` ingests through the API like a real producer: a failed try is sent again
  with the same producer event id, which makes the retry safe.
- :func:`judge` compares the ledger with what Postgres recorded: every delivery arrived,
  every sequence in order without a gap, and every duplicate explained.

Which worker sent a request: each worker of a fleet has its own ``public_url``, which every
thin payload carries in its signed link, so the tag travels in the body the receiver reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson
from aiohttp import web
from redis.asyncio import Redis

from composition.web import build_app
from hookline.db import Pool
from hookline.settings import Settings
from tests.conftest import TenantKey

MODES = ("strict", "keyed", "none")
KEYS = 4  # ordering keys of the `keyed` endpoint: four lanes in parallel
MAX_FAILURES = 2  # per delivery: with more retries than this, nothing is dead-lettered


@dataclass(frozen=True)
class Copy:
    """One request as the receiver got it."""

    mode: str
    event_id: str
    lane: str
    seq: int | None
    attempt: str
    signature: str
    worker: str
    status: int
    arrived: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Ledger:
    """The receiver of the three chaos endpoints (one per ordering mode)."""

    fail_rate: float = 0.2
    seed: int = 4
    copies: list[Copy] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    port: int = 0
    _rng: random.Random = field(init=False)
    _head: dict[str, int] = field(default_factory=lambda: defaultdict(lambda: 1))
    _done: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    _answering: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    _worker_busy: Counter[str] = field(default_factory=Counter)
    _failed: Counter[tuple[str, str]] = field(default_factory=Counter)
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}"

    def senders(self) -> set[str]:
        return {c.worker for c in self.copies}

    def busy_workers(self) -> set[str]:
        """Workers with a request in the receiver's hands right now."""
        return {w for w, n in self._worker_busy.items() if n}

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{mode}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        mode = request.match_info["mode"]
        body = orjson.loads(await request.read())
        headers = request.headers
        event_id = headers["webhook-id"]
        seq = int(headers["hookline-sequence"]) if "hookline-sequence" in headers else None
        lane = {"strict": mode, "keyed": f"{mode}/{body.get('subject')}"}.get(
            mode, f"{mode}/{event_id}"
        )
        worker = (urlsplit(body["links"]["event"]).hostname or "?").split(".")[0]
        arrived = time.monotonic()
        if seq is not None:
            self._arriving(lane, seq)
            self._answering[lane][seq] += 1
        self._worker_busy[worker] += 1
        try:
            await asyncio.sleep(self._rng.uniform(0, 0.02))  # a receiver takes a moment
            status = 204
            if self._failed[mode, event_id] < MAX_FAILURES and self._rng.random() < self.fail_rate:
                self._failed[mode, event_id] += 1
                status = 500
            if seq is not None and status == 204:
                self._succeeded(lane, seq)
        finally:
            if seq is not None:
                self._answering[lane][seq] -= 1
            self._worker_busy[worker] -= 1
        attempt = headers["hookline-attempt"]
        signature = headers["webhook-signature"]
        self.copies.append(
            Copy(mode, event_id, lane, seq, attempt, signature, worker, status, arrived)
        )
        return web.Response(status=status)

    def _arriving(self, lane: str, seq: int) -> None:
        # (the same delivery again while its last try is still being answered is a retry
        # after a timeout, not an overtaking)
        if any(n for other, n in self._answering[lane].items() if other != seq):
            self.violations.append(f"{lane}: #{seq} arrived while another request was unanswered")
        if seq > self._head[lane]:
            self.violations.append(f"{lane}: #{seq} overtook its head #{self._head[lane]}")

    def _succeeded(self, lane: str, seq: int) -> None:
        done = self._done[lane]
        done.add(seq)
        while self._head[lane] in done:
            self._head[lane] += 1


@contextlib.asynccontextmanager
async def api_client(
    settings: Settings, pool: Pool, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    """The API in this process; a crash of a route is a 500, as a real server answers."""
    app = build_app(settings, pool, redis)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as api:
        yield api


async def endpoints(api: httpx.AsyncClient, tenant: TenantKey, ledger: Ledger) -> dict[str, str]:
    """One endpoint per ordering mode, all wanting every event; endpoint id -> mode."""
    r = await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "chaos"})
    assert r.status_code == 201, r.text
    in_flight = {"strict": 1, "keyed": KEYS, "none": 8}
    made = {}
    for mode in MODES:
        spec: dict[str, Any] = {"subscriber": "chaos", "url": ledger.url(mode), "ordering": mode}
        spec["max_in_flight"] = in_flight[mode]
        r = await api.post("/v1/endpoints", headers=tenant.headers, json=spec)
        assert r.status_code == 201, r.text
        made[r.json()["id"]] = mode
    return made


@dataclass
class Production:
    """What the producers did: events accepted, and tries that failed and were sent again."""

    count: int
    accepted: set[str] = field(default_factory=set)
    failed_tries: int = 0
    failed_statuses: set[int | None] = field(default_factory=set)  # None: no answer at all
    found_committed: int = 0  # a retry found that a failed-looking try had committed
    slowest: float = 0.0  # seconds, of one try


async def produce(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    production: Production,
    *,
    producers: int = 4,
    pace: float = 0.05,
    deadline: float = 60.0,
) -> None:
    """Ingest ``production.count`` events from ``producers`` concurrent producers, one every
    ``pace`` seconds each; a try that fails is sent again with the same producer event id."""

    async def one(n: int) -> None:
        event: dict[str, Any] = {
            "id": f"p{n}",
            "type": "chaos.tick",
            "subject": f"k{n % KEYS}",
            "data": {"n": n},
        }
        give_up = time.monotonic() + deadline
        while True:
            began = time.monotonic()
            try:
                r = await api.post("/v1/events", headers=tenant.headers, json=event)
            except httpx.HTTPError:
                r = None
            production.slowest = max(production.slowest, time.monotonic() - began)
            if r is not None and r.status_code == 202:
                production.accepted.add(event["id"])
                return
            if r is not None and r.status_code == 409 and "exists already" in r.text:
                production.found_committed += 1
                production.accepted.add(event["id"])
                return
            assert r is None or r.status_code >= 500, f"ingest refused: {r.status_code} {r.text}"
            production.failed_tries += 1
            production.failed_statuses.add(None if r is None else r.status_code)
            assert time.monotonic() < give_up, f"could not ingest event {n} in {deadline}s"
            await asyncio.sleep(0.1)  # a producer's back-off

    async def producer(p: int) -> None:
        for n in range(p, production.count, producers):
            await one(n)
            await asyncio.sleep(pace)

    await asyncio.gather(*(producer(p) for p in range(producers)))


async def settled(pool: Pool, expected: int) -> bool:
    """Every one of ``expected`` deliveries succeeded, according to Postgres (False while
    it cannot be reached)."""
    try:
        row = await pool.fetchrow(
            "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'succeeded') AS ok"
            " FROM deliveries"
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    assert row is not None
    return bool(row["n"] == row["ok"] == expected)


@dataclass
class Report:
    """The counts a chaos run is judged by; printed in one line."""

    scenario: str
    events: int = 0
    deliveries: int = 0
    requests: int = 0
    kills: int = 0
    in_flight_at_kills: int = 0
    duplicates: int = 0
    late_answers: int = 0
    order_violations: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        counts = {
            "events": self.events,
            "deliveries": self.deliveries,
            "requests": self.requests,
            "kills": self.kills,
            "in flight at the kills": self.in_flight_at_kills,
            "duplicates": self.duplicates,
            "late answers": self.late_answers,
            "order violations": len(self.order_violations),
            "lost": len(self.lost),
            "unexplained": len(self.unexplained),
            **self.extra,
        }
        return f"chaos [{self.scenario}]: " + ", ".join(f"{k} {v}" for k, v in counts.items())

    def problems(self) -> str:
        shown = [*self.lost[:5], *self.order_violations[:5], *self.unexplained[:5]]
        return "\n".join(shown)


async def judge(
    pool: Pool, ledger: Ledger, modes: dict[str, str], killed: list[str], scenario: str
) -> Report:
    """Compare what the receiver got with what Postgres recorded.

    A request is *recorded* when an attempt row carries its signature and attempt number
    (the signed body names the worker, so copies sent by different workers never share
    one). A worker records every result it got, through any outage, unless it dies first:
    so a request never recorded must come from a worker that was killed; it was in flight
    at the kill (sent, its result not yet written). Each delivery has exactly one recorded
    success, and every other 2xx copy of it (a duplicate) is such a request or a late
    answer: a 2xx that the worker recorded as a failure because it came past the deadline.
    """
    report = Report(scenario, kills=len(killed), requests=len(ledger.copies))
    report.order_violations = list(ledger.violations)
    copies: dict[tuple[str, str], list[Copy]] = defaultdict(list)
    for c in sorted(ledger.copies, key=lambda c: c.arrived):
        copies[c.mode, c.event_id].append(c)
    recorded: dict[str, dict[tuple[str, str], int | None]] = defaultdict(dict)
    for a in await pool.fetch(
        "SELECT delivery_id, status_code, request_headers->>'webhook-signature' AS sig,"
        " request_headers->>'hookline-attempt' AS n FROM attempts"
    ):
        recorded[a["delivery_id"]][a["sig"], a["n"]] = a["status_code"]
    deliveries = await pool.fetch("SELECT id, event_id, endpoint_id, seq, status FROM deliveries")
    report.deliveries = len(deliveries)
    report.events = len({d["event_id"] for d in deliveries})
    first_ok: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for d in deliveries:
        mode = modes[d["endpoint_id"]]
        got = copies[mode, d["event_id"]]
        ok = [c for c in got if c.ok]
        if d["status"] != "succeeded" or not ok:
            name = f"{mode}/{d['event_id']}"
            report.lost.append(f"{name}: {d['status']}, {len(ok)} of {len(got)} requests 2xx")
            continue
        if mode != "none":
            first_ok[ok[0].lane].append((ok[0].arrived, d["seq"]))
        _account(report, f"{mode}/{d['event_id']}", d["seq"], got, recorded[d["id"]], killed)
    for lane, arrivals in first_ok.items():
        seqs = [seq for _, seq in sorted(arrivals)]
        if seqs != list(range(1, len(seqs) + 1)):
            report.order_violations.append(f"{lane}: first successes in the order {seqs}")
    return report


def _account(
    report: Report,
    name: str,
    seq: int | None,
    got: list[Copy],
    recorded: dict[tuple[str, str], int | None],
    killed: list[str],
) -> None:
    """Count one delivery's requests: duplicates, in flight at a kill, late answers."""
    wrong = [c.seq for c in got if c.seq is not None and c.seq != seq]
    if wrong:
        report.order_violations.append(f"{name}: sent as #{wrong}, recorded as #{seq}")
    successes = [k for k, status in recorded.items() if status is not None and 200 <= status < 300]
    if len(successes) != 1:
        report.unexplained.append(f"{name}: {len(successes)} successes recorded")
    explained = 0
    for c in got:
        key = (c.signature, c.attempt)
        if key not in recorded:
            if c.worker not in killed:
                report.unexplained.append(f"{name}: a request of {c.worker} never recorded")
                continue
            report.in_flight_at_kills += 1
            explained += c.ok
        elif c.ok and recorded[key] is None:  # the worker timed out before the 2xx came
            report.late_answers += 1
            explained += 1
    duplicates = sum(c.ok for c in got) - 1
    report.duplicates += duplicates
    if duplicates > explained:
        report.unexplained.append(f"{name}: {duplicates} duplicates, {explained} explained")
