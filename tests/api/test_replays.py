"""Replays through the API: each filter's dry-run count is what its job then queues and
the receiver gets; bad filters are refused; states move as documented; tenants are apart."""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from hookline.db import Pool
from hookline.settings import Settings
from hookline.tenants import create_tenant
from tests.conftest import TenantKey, running_worker
from tests.receiver import Receiver, wait_for

Body = dict[str, Any]


async def make_endpoint(api: httpx.AsyncClient, tenant: TenantKey, url: str, **fields: Any) -> str:
    """An endpoint of subscriber ``c`` (made if missing) that gives up after one retry."""
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    body = {"subscriber": "c", "url": url, "retry_schedule": [0.01], **fields}
    r = await api.post("/v1/endpoints", headers=tenant.headers, json=body)
    assert r.status_code == 201, r.text
    endpoint_id: str = r.json()["id"]
    return endpoint_id


async def ingest(api: httpx.AsyncClient, tenant: TenantKey, type_: str, **fields: Any) -> Body:
    r = await api.post(
        "/v1/events", headers=tenant.headers, json={"type": type_, "data": {}, **fields}
    )
    assert r.status_code == 202, r.text
    accepted: Body = r.json()
    return accepted


async def deliveries(api: httpx.AsyncClient, tenant: TenantKey, **params: Any) -> list[Body]:
    found: list[Body] = []
    cursor = None
    while True:
        query = {"limit": 100, **params} | ({"cursor": cursor} if cursor else {})
        r = await api.get("/v1/deliveries", headers=tenant.headers, params=query)
        assert r.status_code == 200, r.text
        found += r.json()["data"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return found


async def dry_run(api: httpx.AsyncClient, tenant: TenantKey, path: str, body: Body) -> int:
    r = await api.post(path, headers=tenant.headers, json={**body, "dry_run": True})
    assert r.status_code == 200, r.text
    count: int = r.json()["count"]
    return count


async def start(api: httpx.AsyncClient, tenant: TenantKey, path: str, body: Body) -> Body:
    r = await api.post(path, headers=tenant.headers, json=body)
    assert r.status_code == 202, r.text
    replay: Body = r.json()
    return replay


async def replay_now(api: httpx.AsyncClient, tenant: TenantKey, replay_id: str) -> Body:
    r = await api.get(f"/v1/replays/{replay_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    replay: Body = r.json()
    return replay


async def finished(api: httpx.AsyncClient, tenant: TenantKey, replay_id: str) -> Body:
    async def done() -> bool:
        return bool((await replay_now(api, tenant, replay_id))["state"] == "done")

    await wait_for(done, what=f"replay {replay_id} to be done")
    return await replay_now(api, tenant, replay_id)


async def settled(
    api: httpx.AsyncClient, tenant: TenantKey, receiver: Receiver, requests: int
) -> bool:
    """Nothing is left to send and the receiver has had ``requests`` requests at least."""
    unfinished = await deliveries(api, tenant, status="pending")
    unfinished += await deliveries(api, tenant, status="retrying")
    return not unfinished and len(receiver.requests) >= requests


@pytest.mark.slow
async def test_each_filter_queues_what_its_dry_run_counted(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    pool: Pool,
    redis: Redis,
) -> None:
    h = tenant.headers
    base = f"http://127.0.0.1:{receiver.port}"
    receiver.respond = lambda got: web.Response(status=500)
    a = await make_endpoint(api, tenant, f"{base}/a")
    b = await make_endpoint(api, tenant, f"{base}/b")
    paths = {a: "/a", b: "/b"}
    e1 = await ingest(api, tenant, "t1")
    e2 = await ingest(api, tenant, "t2")
    e3 = await ingest(api, tenant, "t1")  # the time range's mark: ingested from e3 on
    e4 = await ingest(api, tenant, "t2")
    mark = e3["timestamp"]
    async with running_worker(settings, pool, redis):

        async def all_failed() -> bool:
            return len(await deliveries(api, tenant, status="failed")) == 8

        await wait_for(all_failed, what="8 dead letters")

        # a dry run changes nothing
        assert await dry_run(api, tenant, f"/v1/endpoints/{a}/replay", {}) == 4
        assert await dry_run(api, tenant, "/v1/replays", {}) == 8
        assert len(await deliveries(api, tenant, status="failed")) == 8
        assert (await api.get("/v1/replays", headers=h)).json()["data"] == []

        receiver.respond = None  # the receivers are fixed
        # in this order, each filter narrows by one more thing than the ones before
        cases: list[tuple[str, Body, set[tuple[str, str]]]] = [
            # endpoint, type and time range
            (f"/v1/endpoints/{a}/replay", {"types": ["t1"], "until": mark}, {(a, e1["id"])}),
            # every endpoint, by type from the mark on
            ("/v1/replays", {"types": ["t2"], "since": mark}, {(a, e4["id"]), (b, e4["id"])}),
            # one endpoint named in the body, every failed one left
            (
                "/v1/replays",
                {"endpoint": b},
                {(b, e1["id"]), (b, e2["id"]), (b, e3["id"])},
            ),
            # by status: succeeded ones are sent again
            (
                f"/v1/endpoints/{a}/replay",
                {"statuses": ["succeeded"], "until": mark},
                {(a, e1["id"])},
            ),
            # the default: every failed delivery of the tenant
            ("/v1/replays", {}, {(a, e2["id"]), (a, e3["id"])}),
        ]
        for path, body, expected in cases:
            count = await dry_run(api, tenant, path, body)
            assert count == len(expected), (path, body)
            sent_before = len(receiver.requests)
            replay = await start(api, tenant, path, {**body, "rate": 1000})
            assert replay["total"] == count and replay["state"] == "running", replay
            done = await finished(api, tenant, replay["id"])
            assert done["queued"] == count and done["finished_at"] is not None, done

            await wait_for(
                partial(settled, api, tenant, receiver, sent_before + count),
                what=f"the replay of {body} to be sent",
            )
            got = [
                (r.path, r.headers["webhook-id"], r.headers["hookline-attempt"])
                for r in receiver.requests[sent_before:]
            ]
            assert sorted((p, e) for p, e, _ in got) == sorted(
                (paths[ep], event) for ep, event in expected
            ), body
            assert {n for _, _, n in got} <= {"3", "4"}, got  # one attempt more each
    assert len(await deliveries(api, tenant, status="failed")) == 0

    # finished is final
    r = await api.post(f"/v1/replays/{replay['id']}/pause", headers=h)
    assert r.status_code == 409 and "done" in r.json()["detail"], r.text


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"missed": True}, "since"),
        ({"statuses": ["pending"]}, "statuses"),
        ({"statuses": []}, "statuses"),
        ({"rate": 0}, "rate"),
        ({"rate": 1001}, "rate"),
        ({"rate": "5"}, "rate"),
        ({"since": "2026-01-01T00:00:00"}, "since"),  # no zone
        ({"since": "0001-01-01T00:00:00+14:00"}, "since"),  # before year 1 in UTC
        ({"types": []}, "types"),
        ({"dry_run": 1}, "dry_run"),
        ({"surprise": True}, "surprise"),
    ],
)
async def test_a_filter_that_makes_no_sense_is_refused(
    api: httpx.AsyncClient, tenant: TenantKey, body: Body, loc: str
) -> None:
    endpoint = await make_endpoint(api, tenant, "http://127.0.0.1:9/x")
    variants = [body] if "dry_run" in body else [body, {**body, "dry_run": True}]
    for path in (f"/v1/endpoints/{endpoint}/replay", "/v1/replays"):
        for sent in variants:
            r = await api.post(path, headers=tenant.headers, json=sent)
            assert r.status_code == 422, (path, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert ["body", loc] in [e["loc"][:2] for e in r.json()["errors"]], r.text
    assert (await api.get("/v1/replays", headers=tenant.headers)).json()["data"] == []


async def test_missed_needs_one_endpoint_and_an_endpoint_must_exist(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    h = tenant.headers
    since = {"since": "2026-01-01T00:00:00Z"}
    r = await api.post("/v1/replays", headers=h, json={"missed": True, **since})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "endpoint"], r.text
    r = await api.post("/v1/replays", headers=h, json={"endpoint": "ep_nope", "dry_run": True})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "endpoint"], r.text
    r = await api.post("/v1/endpoints/ep_nope/replay", headers=h, json={"dry_run": True})
    assert r.status_code == 404, r.text
    r = await api.post("/v1/endpoints/ep_nope/replay", headers=h)
    assert r.status_code == 404, r.text
    # no body at all: the defaults (every failed delivery of the endpoint)
    endpoint = await make_endpoint(api, tenant, "http://127.0.0.1:9/x")
    r = await api.post(f"/v1/endpoints/{endpoint}/replay", headers=h)
    assert r.status_code == 202, r.text
    assert r.json()["filter"] == {
        "types": None,
        "statuses": ["failed"],
        "since": None,
        "until": None,
        "missed": False,
    }
    assert r.json()["endpoint"] == endpoint and r.json()["rate"] == 50


async def test_pause_resume_cancel_move_as_documented(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    # no worker runs: the replay stays where the API puts it
    h = tenant.headers
    endpoint = await make_endpoint(api, tenant, "http://127.0.0.1:9/x")
    replay = await start(api, tenant, f"/v1/endpoints/{endpoint}/replay", {"rate": 3})
    rid = replay["id"]
    assert replay["rate"] == 3 and replay["queued"] == 0 and replay["finished_at"] is None

    async def act(action: str, status: int, state: str) -> Body:
        r = await api.post(f"/v1/replays/{rid}/{action}", headers=h)
        assert r.status_code == status, (action, r.text)
        assert (await replay_now(api, tenant, rid))["state"] == state
        answer: Body = r.json()
        return answer

    await act("pause", 200, "paused")
    await act("pause", 200, "paused")  # already paused: nothing changes
    await act("resume", 200, "running")
    await act("resume", 200, "running")
    cancelled = await act("cancel", 200, "cancelled")
    assert cancelled["finished_at"] is not None
    for action in ("pause", "resume", "cancel"):
        problem = await act(action, 409, "cancelled")
        assert "cancelled" in problem["detail"] and "new one" in problem["detail"], problem


async def test_replays_are_listed_newest_first_by_page_and_filter(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    h = tenant.headers
    first = await make_endpoint(api, tenant, "http://127.0.0.1:9/x")
    second = await make_endpoint(api, tenant, "http://127.0.0.1:9/y")
    made = [
        (await start(api, tenant, "/v1/replays", body))["id"]
        for body in ({"endpoint": first}, {"endpoint": second}, {})
    ]
    await api.post(f"/v1/replays/{made[0]}/cancel", headers=h)
    r = await api.get("/v1/replays", headers=h, params={"limit": 2})
    page = r.json()
    assert [x["id"] for x in page["data"]] == made[:0:-1] and page["next_cursor"] == made[1]
    r = await api.get("/v1/replays", headers=h, params={"cursor": page["next_cursor"]})
    assert [x["id"] for x in r.json()["data"]] == made[:1]
    assert r.json()["next_cursor"] is None
    r = await api.get("/v1/replays", headers=h, params={"endpoint": second})
    assert [x["id"] for x in r.json()["data"]] == [made[1]]
    r = await api.get("/v1/replays", headers=h, params={"state": "cancelled"})
    assert [x["id"] for x in r.json()["data"]] == [made[0]]
    r = await api.get("/v1/replays", headers=h, params={"state": "stuck"})
    assert r.status_code == 422


async def test_another_tenants_replays_and_endpoints_are_not_found(
    api: httpx.AsyncClient, tenant: TenantKey, pool: Pool
) -> None:
    created, key = await create_tenant(pool, "Other")
    other = TenantKey(created.id, key)
    theirs = await make_endpoint(api, other, "http://127.0.0.1:9/theirs")
    replay = await start(api, other, "/v1/replays", {"endpoint": theirs})
    h = tenant.headers
    for method, path in [
        ("GET", f"/v1/replays/{replay['id']}"),
        ("POST", f"/v1/replays/{replay['id']}/pause"),
        ("POST", f"/v1/replays/{replay['id']}/resume"),
        ("POST", f"/v1/replays/{replay['id']}/cancel"),
        ("POST", f"/v1/endpoints/{theirs}/replay"),
    ]:
        r = await api.request(method, path, headers=h, json={"dry_run": True})
        assert r.status_code == 404 and r.json()["status"] == 404, (method, path, r.text)
    r = await api.post("/v1/replays", headers=h, json={"endpoint": theirs})
    assert r.status_code == 422, r.text
    assert (await api.get("/v1/replays", headers=h)).json()["data"] == []
    assert await replay_now(api, other, replay["id"]) == replay


async def test_the_document_shows_both_answers_of_a_replay(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    for path in ("/v1/endpoints/{id}/replay", "/v1/replays"):
        responses = paths[path]["post"]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "ReplayCount"
        )
        assert responses["202"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "ReplayOut"
        )
    for action in ("pause", "resume", "cancel"):
        assert "409" in paths[f"/v1/replays/{{id}}/{action}"]["post"]["responses"]
