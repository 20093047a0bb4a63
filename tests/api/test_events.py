"""Events through the API: batches, idempotency, listing, cancelling, expiry, fetches,
limits."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiohttp import web
from redis.asyncio import Redis

from hookline.db import Pool
from hookline.settings import Settings
from tests.conftest import TenantKey, running_worker
from tests.receiver import Receiver, wait_for


async def _endpoints(
    api: httpx.AsyncClient, tenant: TenantKey, urls: list[str], **fields: Any
) -> list[str]:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    ids = []
    for url in urls:
        r = await api.post(
            "/v1/endpoints", headers=tenant.headers, json={"subscriber": "c", "url": url, **fields}
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


async def _deliveries(api: httpx.AsyncClient, tenant: TenantKey, **params: Any) -> list[Any]:
    r = await api.get("/v1/deliveries", headers=tenant.headers, params=params | {"limit": 100})
    assert r.status_code == 200, r.text
    data: list[Any] = r.json()["data"]
    return data


async def test_batch_is_all_or_nothing_and_keeps_order_in_a_lane(
    api: httpx.AsyncClient, tenant: TenantKey, worker: None, receiver: Receiver
) -> None:
    await _endpoints(api, tenant, [receiver.url], payload="full")
    events = [{"type": "t", "data": {"n": n}} for n in range(5)]
    bad = [*events[:2], {"type": "t", "data": {}, "subscriber": "nobody"}, *events[2:]]
    r = await api.post("/v1/events/batch", headers=tenant.headers, json={"events": bad})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {
            "loc": ["body", "events", 2, "subscriber"],
            "msg": "no subscriber 'nobody'",
            "kind": "unknown",
        }
    ]
    assert (await api.get("/v1/events", headers=tenant.headers)).json()["data"] == []

    r = await api.post("/v1/events/batch", headers=tenant.headers, json={"events": events})
    assert r.status_code == 202, r.text
    accepted = r.json()["data"]
    assert [a["deliveries"] for a in accepted] == [1] * 5
    await wait_for(lambda: len(receiver.requests) == 5, what="the batch")
    assert [json.loads(got.body)["data"]["n"] for got in receiver.requests] == list(range(5))
    assert [got.headers["hookline-sequence"] for got in receiver.requests] == list("12345")
    assert [got.headers["webhook-id"] for got in receiver.requests] == [a["id"] for a in accepted]


async def test_batch_limits(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    too_many = {"events": [{"type": "t", "data": {}}] * 1001}
    r = await api.post("/v1/events/batch", headers=tenant.headers, json=too_many)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "events"]
    r = await api.post("/v1/events/batch", headers=tenant.headers, json={"events": []})
    assert r.status_code == 422
    twice = {"events": [{"id": "a", "type": "t", "data": {}}, {"id": "a", "type": "t", "data": {}}]}
    r = await api.post("/v1/events/batch", headers=tenant.headers, json=twice)
    assert r.status_code == 409
    assert r.json()["errors"][0]["loc"] == ["body", "events", 1, "id"]


async def test_producer_id_is_unique_per_tenant(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool
) -> None:
    from hookline.tenants import create_tenant

    event = {"id": "order-1-created", "type": "t", "data": {}}
    assert (await api.post("/v1/events", headers=tenant.headers, json=event)).status_code == 202
    again = await api.post("/v1/events", headers=tenant.headers, json=event)
    assert again.status_code == 409
    _, key = await create_tenant(pool, "Other")
    other = {"authorization": f"Bearer {key}"}
    assert (await api.post("/v1/events", headers=other, json=event)).status_code == 202


async def test_racing_requests_on_one_idempotency_key_make_one_event(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    await _endpoints(api, tenant, ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"])
    headers = tenant.headers | {"idempotency-key": "k-1"}
    body = {"type": "order.created", "data": {"total": 1}}
    answers = await asyncio.gather(
        *(api.post("/v1/events", headers=headers, json=body) for _ in range(20))
    )
    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1, "every racer gets the first response"
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 19
    listed = (await api.get("/v1/events", headers=tenant.headers)).json()["data"]
    assert len(listed) == 1
    assert len(await _deliveries(api, tenant)) == 2

    other = await api.post("/v1/events", headers=headers, json=body | {"data": {"total": 2}})
    assert other.status_code == 409
    assert "different request" in other.json()["detail"]


async def test_an_idempotent_4xx_is_replayed_too(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    headers = tenant.headers | {"idempotency-key": "k-2"}
    body = {"type": "t", "data": {}, "subscriber": "nobody"}
    first = await api.post("/v1/events", headers=headers, json=body)
    second = await api.post("/v1/events", headers=headers, json=body)
    assert first.status_code == second.status_code == 422
    assert first.content == second.content
    assert second.headers["content-type"] == "application/problem+json"


async def test_list_filters_and_pages(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "s1"})
    for n in range(5):
        event = {"type": "a" if n % 2 else "b", "data": {"n": n}}
        if n == 4:
            event["subscriber"] = "s1"
        assert (await api.post("/v1/events", headers=tenant.headers, json=event)).status_code == 202

    async def listed(**params: Any) -> list[int]:
        r = await api.get("/v1/events", headers=tenant.headers, params=params)
        assert r.status_code == 200, r.text
        return [e["data"]["n"] for e in r.json()["data"]]

    assert await listed() == [4, 3, 2, 1, 0]
    assert await listed(type="a") == [3, 1]
    assert await listed(subscriber="s1") == [4]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await listed(after=future) == []
    assert await listed(before=future) == [4, 3, 2, 1, 0]
    first = (await api.get("/v1/events", headers=tenant.headers, params={"limit": 2})).json()
    assert [e["data"]["n"] for e in first["data"]] == [4, 3]
    rest = await listed(limit=10, cursor=first["next_cursor"])
    assert rest == [2, 1, 0]
    r = await api.get("/v1/events", headers=tenant.headers, params={"after": "yesterday"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "after"]


async def test_cancelled_event_is_never_sent_and_its_lane_moves_on(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    await _endpoints(api, tenant, [receiver.url], payload="full")
    stale = (
        await api.post(
            "/v1/events", headers=tenant.headers, json={"type": "order.created", "data": {"n": 1}}
        )
    ).json()
    r = await api.post(f"/v1/events/{stale['id']}/cancel", headers=tenant.headers)
    assert r.status_code == 200 and r.json()["cancelled"] == 1
    fresh = await api.post(
        "/v1/events", headers=tenant.headers, json={"type": "order.cancelled", "data": {"n": 2}}
    )
    async with running_worker(settings, pool, redis):
        await wait_for(lambda: len(receiver.requests) == 1, what="the fresh event")
    assert receiver.requests[0].headers["webhook-id"] == fresh.json()["id"]
    detail = (await api.get(f"/v1/events/{stale['id']}", headers=tenant.headers)).json()
    assert detail["delivery_summary"] == {"cancelled": 1}
    assert detail["cancelled_at"] is not None
    assert (await api.post("/v1/events/evt_nope/cancel", headers=tenant.headers)).status_code == 404


async def test_expired_event_is_cancelled_not_sent_late(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, worker: None
) -> None:
    receiver.respond = lambda got: web.Response(status=500)
    await _endpoints(api, tenant, [receiver.url])
    soon = (datetime.now(UTC) + timedelta(milliseconds=150)).isoformat()
    r = await api.post(
        "/v1/events", headers=tenant.headers, json={"type": "t", "data": {}, "expires_at": soon}
    )
    assert r.status_code == 202

    async def cancelled() -> bool:
        found = await _deliveries(api, tenant)
        return bool(found) and found[0]["status"] == "cancelled"

    await wait_for(cancelled, what="the expired delivery to be cancelled")
    # the first try failed before expiry; the retry came due after it and was not sent
    assert len(receiver.requests) == 1
    r = await api.post(
        "/v1/events",
        headers=tenant.headers,
        json={"type": "t", "data": {}, "expires_at": "2030-01-01T00:00:00"},
    )
    assert r.status_code == 422  # a time without a zone is ambiguous


async def test_thin_payload_fetches_are_recorded(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, worker: None
) -> None:
    [endpoint_id] = await _endpoints(api, tenant, [receiver.url])
    event = (
        await api.post(
            "/v1/events", headers=tenant.headers, json={"type": "t", "data": {"secret": "s"}}
        )
    ).json()
    await wait_for(lambda: len(receiver.requests) == 1, what="the delivery")
    link = httpx.URL(json.loads(receiver.requests[0].body)["links"]["event"])
    assert link.params["endpoint"] == endpoint_id
    assert (await api.get(link.path, params=dict(link.params))).json()["data"] == {"secret": "s"}
    forged = dict(link.params) | {"endpoint": "ep_other"}
    assert (await api.get(link.path, params=forged)).status_code == 404
    detail = (await api.get(f"/v1/events/{event['id']}", headers=tenant.headers)).json()
    assert len(detail["fetches"]) == 1
    assert detail["fetches"][0]["endpoint_id"] == endpoint_id
    assert detail["fetches"][0]["address"]


async def test_deliveries_filter_by_http_status_class(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, worker: None
) -> None:
    receiver.respond = lambda got: web.Response(status=200 if got.path.endswith("ok") else 503)
    await _endpoints(api, tenant, [receiver.url + "/ok", receiver.url + "/down"])
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})

    async def both_tried() -> bool:
        return all(d["attempts"] > 0 for d in await _deliveries(api, tenant))

    await wait_for(both_tried, what="both deliveries tried")
    ok = await _deliveries(api, tenant, http_status="2xx")
    down = await _deliveries(api, tenant, http_status="5xx")
    assert len(ok) == 1 and ok[0]["last_status"] == 200
    assert len(down) == 1 and down[0]["last_status"] == 503
    assert await _deliveries(api, tenant, http_status="4xx") == []


async def test_ingest_rate_limit_answers_429(
    tenant: TenantKey, settings: Settings, pool: Pool, redis: Redis
) -> None:
    from composition.web import build_app

    limited = settings.model_copy(update={"ingest_rate_limit": 3})
    app = build_app(limited, pool, redis)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as api:
        r = await api.post(
            "/v1/events/batch",
            headers=tenant.headers,
            json={"events": [{"type": "t", "data": {}}] * 5},
        )
        assert r.status_code == 429
        assert r.headers["retry-after"] == "1"
        assert "3 events per second" in r.json()["detail"]


async def test_limits_on_input(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    deep: Any = {}
    for _ in range(40):
        deep = {"a": deep}
    r = await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": deep})
    assert r.status_code == 422 and "deeper" in r.json()["detail"]
    # brackets in strings make the depth walk run, not refuse
    body = {"type": "t", "data": {"s": "[{" * 100, "l": [[1], [2]]}}
    r = await api.post("/v1/events", headers=tenant.headers, json=body)
    assert r.status_code == 202, r.text
    r = await api.post("/v1/events", headers=tenant.headers, json={"type": "x" * 201, "data": {}})
    assert r.status_code == 422
    r = await api.post(
        "/v1/events", headers=tenant.headers, json={"type": "t", "data": {}, "surprise": 1}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "surprise"]


async def test_integers_past_64_bits_are_refused_not_mangled(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    body = b'{"type": "t", "data": {"n": [1, 123456789012345678901234567890]}}'
    r = await api.post("/v1/events", headers=tenant.headers, content=body)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "data", "n", 1]
    fine = b'{"type": "t", "data": {"n": 9223372036854775807, "s": "12345678901234567890"}}'
    assert (await api.post("/v1/events", headers=tenant.headers, content=fine)).status_code == 202


async def test_an_endpoint_pinned_to_a_schema_version_gets_only_that_version(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    v1 = {"type": "object", "required": ["amount"]}
    v2 = {"type": "object", "required": ["total"]}
    r = await api.post(
        "/v1/event-types",
        headers=tenant.headers,
        json={"name": "order.created", "description": "", "schema": v1},
    )
    assert r.status_code == 201, r.text
    r = await api.post(
        "/v1/event-types/order.created/schemas", headers=tenant.headers, json={"schema": v2}
    )
    assert r.status_code == 201, r.text
    [on_v1, on_any] = await _endpoints(api, tenant, ["http://127.0.0.1:9/1"]) + [
        (
            await api.post(
                "/v1/endpoints",
                headers=tenant.headers,
                json={"subscriber": "c", "url": "http://127.0.0.1:9/any"},
            )
        ).json()["id"]
    ]
    r = await api.patch(
        f"/v1/endpoints/{on_v1}", headers=tenant.headers, json={"schema_version": 1}
    )
    assert r.status_code == 200, r.text

    async def send(event: dict[str, Any]) -> dict[str, Any]:
        r = await api.post("/v1/events", headers=tenant.headers, json=event)
        assert r.status_code == 202, r.text
        accepted: dict[str, Any] = r.json()
        return accepted

    latest = await send({"type": "order.created", "data": {"total": 1}})
    old = await send({"type": "order.created", "version": 1, "data": {"amount": 1}})
    assert latest["deliveries"] == 1 and old["deliveries"] == 2
    got = await _deliveries(api, tenant, endpoint=on_v1)
    assert [d["event_id"] for d in got] == [old["id"]]
    assert (await api.get(f"/v1/events/{latest['id']}", headers=tenant.headers)).json()[
        "version"
    ] == 2
    wrong = await api.post(
        "/v1/events", headers=tenant.headers, json={"type": "order.created", "data": {"amount": 1}}
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["loc"][:2] == ["body", "data"]
    assert len(await _deliveries(api, tenant, endpoint=on_any)) == 2


async def test_a_batch_numbers_each_keyed_lane_on_its_own(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool
) -> None:
    [keyed] = await _endpoints(api, tenant, ["http://127.0.0.1:9/k"], ordering="keyed")
    subjects = ["a", "b", "a", "c", "a", "b"]
    events = [{"type": "t", "subject": s, "data": {"n": n}} for n, s in enumerate(subjects)]
    for _ in range(2):  # the second batch continues each lane's numbers
        r = await api.post("/v1/events/batch", headers=tenant.headers, json={"events": events})
        assert r.status_code == 202, r.text
    rows = await pool.fetch(
        "SELECT l.key, array_agg(d.seq ORDER BY d.seq) AS seqs FROM deliveries d"
        " JOIN lanes l ON l.id = d.lane_id WHERE d.endpoint_id = $1 GROUP BY l.key"
        " ORDER BY l.key",
        keyed,
    )
    assert {r["key"]: r["seqs"] for r in rows} == {
        "a": [1, 2, 3, 4, 5, 6],
        "b": [1, 2, 3, 4],
        "c": [1, 2],
    }
