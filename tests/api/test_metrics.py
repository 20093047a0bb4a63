"""/metrics: what was ingested and delivered, the backlog and the dead letters."""

from __future__ import annotations

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from composition.web import build_app
from hookline.db import Pool
from hookline.metrics import Metrics
from hookline.settings import Settings
from tests.conftest import TenantKey, running_worker
from tests.receiver import Receiver, wait_for


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.slow
async def test_metrics_count_ingest_deliveries_latency_backlog_and_dead_letters(
    tenant: TenantKey, settings: Settings, pool: Pool, redis: Redis, receiver: Receiver
) -> None:
    receiver.respond = lambda got: web.Response(status=200 if got.path == "/ok" else 500)
    metrics = Metrics()  # one process: the API and the worker share a registry
    app = build_app(settings.model_copy(update={"metrics_public": True}), pool, redis, metrics)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=tenant.headers
    ) as api:
        await api.post("/v1/subscribers", json={"uid": "c"})
        for path in ("ok", "down"):
            url = f"http://127.0.0.1:{receiver.port}/{path}"
            assert (
                await api.post("/v1/endpoints", json={"subscriber": "c", "url": url})
            ).is_success
        await api.post("/v1/events", json={"type": "t", "data": {}})
        await api.post("/v1/events/batch", json={"events": [{"type": "t", "data": {}}] * 2})

        before = _samples((await api.get("/metrics")).text)
        assert before[("hookline_due_backlog_lanes", ())] == 2  # two strict lanes, not sent yet
        assert before[("hookline_ingested_events_total", (("route", "single"),))] == 1
        assert before[("hookline_ingested_events_total", (("route", "batch"),))] == 2

        async def dead_lettered() -> bool:
            found = await api.get("/v1/deliveries", params={"status": "failed"})
            return len(found.json()["data"]) == 3  # the down endpoint's three events

        async with running_worker(settings, pool, redis, metrics):
            await wait_for(dead_lettered, what="the down endpoint's deliveries to fail")
        after = _samples((await api.get("/metrics")).text)

    def attempts(outcome: str, cls: str) -> float:
        key = (("outcome", outcome), ("status_class", cls))
        return after.get(("hookline_delivery_attempts_total", key), 0)

    assert attempts("succeeded", "2xx") == 3
    # strict lane: the first event is tried 3 times and dead-lettered, then each next one
    assert attempts("retrying", "5xx") == 6 and attempts("failed", "5xx") == 3
    assert after[("hookline_attempt_duration_seconds_count", ())] == 12
    assert after[("hookline_dead_letter_deliveries", ())] == 3
    assert after[("hookline_due_backlog_lanes", ())] == 0


async def test_metrics_are_closed_unless_a_token_is_set_or_they_are_opened(
    api: httpx.AsyncClient,
) -> None:
    r = await api.get("/metrics")
    assert r.status_code == 401 and "HOOKLINE_METRICS_PUBLIC" in r.json()["detail"]


async def test_metrics_token_when_configured(settings: Settings, pool: Pool, redis: Redis) -> None:
    guarded = settings.model_copy(update={"metrics_token": "s3cret"})
    app = build_app(guarded, pool, redis)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as api:
        assert (await api.get("/metrics")).status_code == 401
        ok = await api.get("/metrics", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "hookline_ingested_events_total" in ok.text


async def test_a_worker_process_serves_its_own_metrics(settings: Settings) -> None:
    import socket

    from tests import processes

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = processes.start(settings.model_copy(update={"worker_metrics_port": port}), "worker")
    try:
        async with httpx.AsyncClient() as client:

            async def serving() -> bool:
                try:
                    r = await client.get(f"http://127.0.0.1:{port}/metrics")
                except httpx.TransportError:
                    return False
                return r.status_code == 200 and "hookline_delivery_attempts" in r.text

            await wait_for(serving, what="the worker's metrics server")
    finally:
        processes.stop(worker)
