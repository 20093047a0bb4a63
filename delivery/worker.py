"""The worker process: the dispatcher, the doorbell listener, the purge and arq's periodic
jobs.

Delivery never depends on Redis: the dispatcher reads due work from Postgres and the
doorbell only shortens its sleep. arq runs the periodic housekeeping and is restarted when
Redis goes away (arq's own loop does not survive a lost connection), while deliveries go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import httpx
from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker
from prometheus_client import start_http_server
from redis.asyncio import Redis
from redis.exceptions import RedisError

from delivery.dispatcher import Dispatcher
from delivery.health import publish_notices_safely
from delivery.queries import SQL
from delivery.replayer import Replayer
from hookline import doorbell
from hookline.db import Pool
from hookline.doorbell import Doorbell
from hookline.metrics import Metrics
from hookline.retention import purge
from hookline.settings import Settings

log = logging.getLogger(__name__)


async def report_backlog(ctx: dict[str, Any]) -> None:
    """arq cron job: say when due work is waiting, so a stuck installation is visible."""
    pool: Pool = ctx["pool"]
    backlog = await pool.fetchrow(SQL["due_backlog"])
    if backlog is not None and backlog["oldest_s"] > 60:
        log.warning(
            "%d lanes are due and waiting; the oldest for %.0fs (are enough workers running?)",
            backlog["lanes"],
            backlog["oldest_s"],
        )


def arq_worker(settings: Settings, pool: Pool) -> Worker:
    """arq's worker, built from our settings (arq silently drops keys it does not know)."""
    assert settings.redis_url is not None
    return Worker(
        functions=[],
        cron_jobs=[
            cron(report_backlog, second=0),
        ],
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        queue_name=f"{settings.namespace}:arq",
        ctx={"pool": pool},
        handle_signals=False,
        keep_result=0,
        poll_delay=1.0,
    )


async def _keep_arq_running(settings: Settings, pool: Pool, retry_delay: float) -> None:
    while True:
        worker = arq_worker(settings, pool)
        try:
            await worker.async_run()
        except (RedisError, OSError) as exc:
            log.warning("arq lost Redis (%s); periodic jobs resume when it is back", exc)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await worker.close()
        await asyncio.sleep(retry_delay)


async def _publish_notices_now_and_then(
    pool: Pool, interval: float, wake: Callable[[], None]
) -> None:
    # recording publishes the notices it writes; this catches those a crash or an outage
    # left in the outbox between the two
    while True:
        await asyncio.sleep(interval)
        if await publish_notices_safely(pool):
            wake()  # the operational events' lanes are due now


async def _purge_now_and_then(settings: Settings, metrics: Metrics) -> None:
    # a pass at start and one every purge interval; another worker's pass in progress
    # means this one has nothing to do
    while True:
        report = await purge(settings)
        if report is not None:
            for table, n in report.rows.items():
                metrics.purged.labels(table).inc(n)
            if report.rows.total():
                log.info("%s", report.line())
        await asyncio.sleep(settings.purge_interval)


async def _ring_listener(redis: Redis, namespace: str, wake: Callable[[], None]) -> None:
    async for _ in doorbell.listen(redis, namespace):
        wake()


async def _run_replays(settings: Settings, pool: Pool, redis: Redis) -> None:
    # replay jobs, each queued a chunk at a time at its own rate
    await Replayer(settings, pool, Doorbell(redis, settings.namespace)).run()


async def _supervised(name: str, helper: Callable[[], Awaitable[None]], delay: float) -> None:
    """Run a helper loop for the life of the worker. Each loop rides out the outages it
    expects; anything else (a driver error nobody listed, such as asyncpg's
    InternalClientError on a connection a Postgres restart dropped, or a bug) would end its
    task unseen and leave the worker running without it: logged, and started again."""
    while True:
        try:
            await helper()
        except Exception:
            log.exception("the %s stopped on an error; starting it again in %ss", name, delay)
        await asyncio.sleep(delay)


async def run_worker(
    settings: Settings,
    pool: Pool,
    redis: Redis,
    transport: httpx.AsyncBaseTransport,
    metrics: Metrics,
    *,
    until: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Deliver until SIGTERM/SIGINT (or ``until`` returns), then finish in-flight attempts."""
    dispatcher = Dispatcher(settings, pool, transport, metrics)
    if settings.worker_metrics_port:
        # a thread serving the registry: Prometheus scrapes each worker on its own
        start_http_server(
            settings.worker_metrics_port, settings.worker_metrics_host, metrics.registry
        )
    delay = settings.sweep_interval
    loops: dict[str, Callable[[], Awaitable[None]]] = {
        "doorbell listener": partial(_ring_listener, redis, settings.namespace, dispatcher.wake),
        "arq runner": partial(_keep_arq_running, settings, pool, delay),
        "replay runner": partial(_run_replays, settings, pool, redis),
        "notice sweep": partial(_publish_notices_now_and_then, pool, delay, dispatcher.wake),
    }
    if settings.purge_interval:
        loops["purger"] = partial(_purge_now_and_then, settings, metrics)
    helpers = [asyncio.create_task(_supervised(n, h, delay)) for n, h in loops.items()]
    run = asyncio.create_task(dispatcher.run(), name="hookline-dispatcher")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if until is None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        waiter: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    else:
        waiter = asyncio.ensure_future(until())
    try:
        await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
        log.info("worker stopping: finishing attempts in flight")
        dispatcher.stop()
        await run
    finally:
        waiter.cancel()
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, waiter, return_exceptions=True)
        if until is None:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
