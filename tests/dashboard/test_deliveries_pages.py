"""The deliveries pages, dead letters and replays, over HTTP in process: the live list and its
filters, one delivery's attempts, retry, replays, and what a portal session may see."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from hookline.db import Pool
from hookline.settings import Settings
from tests.conftest import TenantKey, running_worker
from tests.dashboard.sessions import open_portal, sign_in
from tests.receiver import Received, Receiver, wait_for

HTMX = {"hx-request": "true"}


async def _endpoint(api: httpx.AsyncClient, tenant: TenantKey, uid: str, url: str) -> str:
    r = await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": uid, "name": uid})
    assert r.status_code in (201, 409), r.text
    r = await api.post(
        "/v1/endpoints", headers=tenant.headers, json={"subscriber": uid, "url": url}
    )
    assert r.status_code == 201, r.text
    endpoint_id: str = r.json()["id"]
    return endpoint_id


async def _send(api: httpx.AsyncClient, tenant: TenantKey, type_: str, **fields: Any) -> str:
    body = {"type": type_, "data": {"n": 1}, **fields}
    r = await api.post("/v1/events", headers=tenant.headers, json=body)
    assert r.status_code == 202, r.text
    event_id: str = r.json()["id"]
    return event_id


async def _deliveries(api: httpx.AsyncClient, tenant: TenantKey, event_id: str) -> dict[str, str]:
    """The deliveries of an event by endpoint id."""
    r = await api.get("/v1/deliveries", headers=tenant.headers, params={"event": event_id})
    return {d["endpoint_id"]: d["id"] for d in r.json()["data"]}


async def _statuses(pool: Pool, ids: list[str]) -> dict[str, str]:
    rows = await pool.fetch("SELECT id, status FROM deliveries WHERE id = ANY ($1)", ids)
    return {r["id"]: r["status"] for r in rows}


async def _until_settled(pool: Pool, ids: list[str]) -> None:
    async def settled() -> bool:
        found = await _statuses(pool, ids)
        return all(s in ("succeeded", "failed") for s in found.values())

    await wait_for(settled, what="the deliveries to finish")


def _shown(page: str, ids: list[str]) -> set[str]:
    """Which of the delivery ``ids`` the list shows as rows."""
    return {i for i in ids if f'id="row-{i}"' in page}


def _answer(status: int, body: str = "", **headers: str) -> Any:
    def respond(_: Received) -> web.Response:
        return web.Response(status=status, text=body, headers=headers)

    return respond


@pytest.mark.slow
async def test_the_list_shows_deliveries_and_each_filter_narrows_it(
    api: httpx.AsyncClient,
    pool: Pool,
    tenant: TenantKey,
    settings: Settings,
    redis: Redis,
    receiver: Receiver,
) -> None:
    failing = Receiver(respond=_answer(503, "down"))
    await failing.start()
    try:
        good = await _endpoint(api, tenant, "c1", receiver.url)
        bad = await _endpoint(api, tenant, "c2", failing.url)
        silent = await _endpoint(api, tenant, "c3", "http://127.0.0.1:9/refused")
        order = await _send(api, tenant, "order.created", id="order-1")
        invoice = await _send(api, tenant, "invoice.paid", subscriber="c1")
        by_endpoint = await _deliveries(api, tenant, order)
        paid = (await _deliveries(api, tenant, invoice))[good]
        everything = [*by_endpoint.values(), paid]
        async with running_worker(settings, pool, redis):
            await _until_settled(pool, everything)
    finally:
        await failing.stop()
    old = by_endpoint[bad]
    await pool.execute("UPDATE deliveries SET created_at = '2020-01-01Z' WHERE id = $1", old)
    await sign_in(api, pool, tenant)

    async def shown(**params: str) -> set[str]:
        r = await api.get("/deliveries", params=params)
        assert r.status_code == 200, r.text
        return _shown(r.text, everything)

    page = await api.get("/deliveries")
    assert _shown(page.text, everything) == set(everything)
    assert receiver.url in page.text and "invoice.paid" in page.text
    assert 'class="live"' in page.text and 'hx-trigger="every 2s"' in page.text
    assert await shown(status="succeeded") == {by_endpoint[good], paid}
    assert await shown(status="failed") == {by_endpoint[bad], by_endpoint[silent]}
    assert await shown(endpoint=bad) == {by_endpoint[bad]}
    assert await shown(type="invoice.paid") == {paid}
    assert await shown(http="2xx") == {by_endpoint[good], paid}
    assert await shown(http="5xx") == {by_endpoint[bad]}
    assert await shown(http="none") == {by_endpoint[silent]}
    assert await shown(before="2021-01-01T00:00") == {old}
    assert await shown(after="2021-01-01T00:00") == set(everything) - {old}
    assert await shown(q=invoice) == {paid}
    assert await shown(q="order-1") == set(by_endpoint.values())  # the producer's own id
    assert await shown(q="evt_nope") == set()
    assert await shown(status="failed", endpoint=silent) == {by_endpoint[silent]}

    r = await api.get("/deliveries", params={"after": "yesterday", "http": "6xx"})
    assert r.status_code == 400 and "A date and time like" in r.text
    assert "Pick a class from the list." in r.text and not _shown(r.text, everything)
    r = await api.get("/deliveries", params={"after": "0001-01-01T00:00"})
    assert r.status_code == 400 and "between 1970-01-01T00:00:00Z" in r.text
    r = await api.get("/deliveries", params={"type": "no.such.type"})
    assert "No deliveries match these filters" in r.text and "Clear filters" in r.text

    dead = await api.get("/dead-letters")
    assert _shown(dead.text, everything) == {by_endpoint[bad], by_endpoint[silent]}
    assert "Replay these" in dead.text and "/replays/new?status=failed" in dead.text
    dead = await api.get("/dead-letters", params={"endpoint": bad, "status": "succeeded"})
    assert _shown(dead.text, everything) == {by_endpoint[bad]}  # the status stays failed
    assert f"/replays/new?status=failed&amp;endpoint={bad}" in dead.text


async def test_an_empty_list_says_what_to_do(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    await sign_in(api, pool, tenant)
    page = await api.get("/deliveries")
    assert "No deliveries yet" in page.text and 'href="/endpoints"' in page.text
    page = await api.get("/dead-letters")
    assert "No dead letters" in page.text
    # the live list inside an endpoint's page: no filters to clear there
    endpoint = await _endpoint(api, tenant, "c", "http://127.0.0.1:9/hook")
    rows = await api.get("/deliveries/rows", params={"endpoint": endpoint})
    assert "No deliveries yet" in rows.text and "Clear filters" not in rows.text
    assert 'hx-trigger="every 2s"' in rows.text  # and it keeps looking


async def test_the_rows_fragment_shows_a_new_delivery_and_its_status_change_without_reload(
    api: httpx.AsyncClient,
    pool: Pool,
    tenant: TenantKey,
    settings: Settings,
    redis: Redis,
    receiver: Receiver,
) -> None:
    await _endpoint(api, tenant, "c1", receiver.url)
    await sign_in(api, pool, tenant)
    page = await api.get("/deliveries")
    poll = re.search(r'hx-get="(/deliveries/rows\?[^"]*)"', page.text)
    assert poll, "the list does not poll its rows"
    before = await api.get(poll.group(1).replace("&amp;", "&"), headers=HTMX)
    assert before.status_code == 200 and "<html" not in before.text
    assert "No deliveries yet" in before.text

    event = await _send(api, tenant, "order.created")
    (delivery,) = (await _deliveries(api, tenant, event)).values()
    after = await api.get(poll.group(1).replace("&amp;", "&"), headers=HTMX)
    assert f'id="row-{delivery}"' in after.text and 'badge pending">pending' in after.text
    assert 'hx-trigger="every 2s"' in after.text  # the fragment keeps polling
    fresh = await api.get("/deliveries/rows", params={"seen": "dlv_0"}, headers=HTMX)
    assert f'id="row-{delivery}" class="fresh"' in fresh.text  # rows the page had not shown

    async def turned_green() -> bool:
        r = await api.get("/deliveries/rows", headers=HTMX)
        return f'id="row-{delivery}"' in r.text and 'badge succeeded">succeeded' in r.text

    async with running_worker(settings, pool, redis):
        await wait_for(turned_green, what="the row to show the delivery succeeded")
    older = await api.get("/deliveries", params={"cursor": "dlv_~"})
    assert 'hx-trigger="every 2s"' not in older.text  # only the first page is live


async def test_the_delivery_page_shows_each_attempt_escaped(
    api: httpx.AsyncClient,
    pool: Pool,
    tenant: TenantKey,
    settings: Settings,
    redis: Redis,
    receiver: Receiver,
) -> None:
    answers = iter(
        [
            _answer(500, "<script>alert(1)</script>", **{"x-trace": "abc-123"}),
            _answer(200, "thanks"),
        ]
    )
    receiver.respond = lambda got: next(answers)(got)
    endpoint = await _endpoint(api, tenant, "c1", receiver.url)
    r = await api.patch(
        f"/v1/endpoints/{endpoint}",
        headers=tenant.headers,
        json={"headers": {"x-api-key": "sekrit-value"}, "payload": "full"},
    )
    assert r.status_code == 200, r.text
    event = await _send(api, tenant, "order.created", data={"note": "<b>bold</b>"})
    (delivery,) = (await _deliveries(api, tenant, event)).values()
    await sign_in(api, pool, tenant)
    page = await api.get(f"/deliveries/{delivery}")
    assert page.status_code == 200
    assert f'hx-get="/deliveries/{delivery}/live' in page.text  # pending: it refreshes
    assert "No attempts yet" in page.text

    async with running_worker(settings, pool, redis):
        await _until_settled(pool, [delivery])
    page = await api.get(f"/deliveries/{delivery}")
    text = page.text
    assert 'class="timeline"' in text and "Attempt 1" in text and "Attempt 2" in text
    assert 'http c5">500' in text and 'http c2">200' in text and " ms</span>" in text
    assert "x-trace: abc-123" in text  # response headers
    assert f"webhook-id: {event}" in text and "hookline-attempt: 2" in text  # request headers
    assert "x-api-key: [redacted]" in text and "sekrit-value" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert" not in text
    assert "thanks" in text
    assert "signature and timestamp differ per attempt" in text
    assert "<strong>full</strong> payloads" in text and "&lt;b&gt;bold&lt;/b&gt;" in text
    assert 'hx-trigger="every 2s"' not in text  # succeeded: nothing changes any more

    live = await api.get(f"/deliveries/{delivery}/live", headers=HTMX)
    assert live.status_code == 200 and "Attempt 2" in live.text and "<html" not in live.text
    pending = await _send(api, tenant, "order.created")
    (waiting,) = (await _deliveries(api, tenant, pending)).values()
    page = await api.get(f"/deliveries/{waiting}")
    poll = re.search(r'hx-get="(/deliveries/[^"]+/live\?seen=[^"]+)"', page.text)
    assert poll
    unchanged = await api.get(poll.group(1), headers=HTMX)
    assert unchanged.status_code == 204  # nothing changed: htmx keeps what is on screen


@pytest.mark.slow
async def test_retry_needs_the_csrf_token_and_sends_a_dead_letter_again(
    api: httpx.AsyncClient,
    pool: Pool,
    tenant: TenantKey,
    settings: Settings,
    redis: Redis,
    receiver: Receiver,
) -> None:
    receiver.respond = _answer(500)
    await _endpoint(api, tenant, "c1", receiver.url)
    failed_event = await _send(api, tenant, "order.created")
    (failed,) = (await _deliveries(api, tenant, failed_event)).values()
    async with running_worker(settings, pool, redis):
        await _until_settled(pool, [failed])
        receiver.respond = None  # the endpoint is fixed: 204 from now on
        ok_event = await _send(api, tenant, "order.created")
        (ok,) = (await _deliveries(api, tenant, ok_event)).values()
        await _until_settled(pool, [ok])
    assert await _statuses(pool, [failed, ok]) == {failed: "failed", ok: "succeeded"}
    csrf = await sign_in(api, pool, tenant)

    dead = await api.get("/dead-letters")
    assert _shown(dead.text, [failed, ok]) == {failed}
    assert f'action="/deliveries/{failed}/retry"' in dead.text
    page = await api.get(f"/deliveries/{failed}")
    assert "Retry now" in page.text

    r = await api.post(f"/deliveries/{failed}/retry", data={})
    assert r.status_code == 403
    r = await api.post(f"/deliveries/{failed}/retry", data={"csrf": "forged"})
    assert r.status_code == 403
    assert await _statuses(pool, [failed]) == {failed: "failed"}
    r = await api.post(f"/deliveries/{failed}/retry", data={"csrf": csrf, "next": "/dead-letters"})
    assert r.status_code == 303 and r.headers["location"] == "/dead-letters"
    r = await api.post(f"/deliveries/{ok}/retry", data={"csrf": csrf, "next": "https://evil.test/"})
    assert r.status_code == 409 and "only those can be retried" in r.text

    async with running_worker(settings, pool, redis):
        await _until_settled(pool, [failed])
    assert await _statuses(pool, [failed]) == {failed: "succeeded"}
    assert _shown((await api.get("/dead-letters")).text, [failed, ok]) == set()
    r = await api.post("/deliveries/dlv_nope/retry", data={"csrf": csrf})
    assert r.status_code == 404


async def _dead_letters(
    api: httpx.AsyncClient,
    pool: Pool,
    tenant: TenantKey,
    settings: Settings,
    redis: Redis,
    receiver: Receiver,
    n: int,
) -> tuple[str, list[str]]:
    """An endpoint with ``n`` failed deliveries, and the ids of those."""
    receiver.respond = _answer(500)
    endpoint = await _endpoint(api, tenant, "c1", receiver.url)
    ids = []
    for _ in range(n):
        event = await _send(api, tenant, "order.created")
        ids += list((await _deliveries(api, tenant, event)).values())
    async with running_worker(settings, pool, redis):
        await _until_settled(pool, ids)
    receiver.respond = None
    return endpoint, ids


@pytest.mark.slow
async def test_a_replay_is_counted_started_and_followed_to_the_end(
    api: httpx.AsyncClient,
    pool: Pool,
    tenant: TenantKey,
    settings: Settings,
    redis: Redis,
    receiver: Receiver,
) -> None:
    endpoint, failed = await _dead_letters(api, pool, tenant, settings, redis, receiver, 3)
    csrf = await sign_in(api, pool, tenant)
    form = await api.get("/replays/new", params={"status": "failed", "endpoint": endpoint})
    assert form.status_code == 200
    assert f'<option value="{endpoint}" selected>' in form.text
    assert 'name="statuses" value="failed" checked' in form.text
    assert 'hx-post="/replays/count"' in form.text

    fields = {"csrf": csrf, "endpoint": endpoint, "statuses": "failed", "rate": "100"}
    dry = await api.post(
        f"/v1/endpoints/{endpoint}/replay", headers=tenant.headers, json={"dry_run": True}
    )
    assert dry.json() == {"count": 3}
    counted = await api.post("/replays/count", data=fields, headers=HTMX)
    assert counted.status_code == 200 and "<html" not in counted.text
    assert "<strong>3</strong> deliveries would be sent again" in counted.text
    assert 'id="replay-form"' in counted.text  # the form comes back, values kept
    assert (await api.post("/replays/count", data={**fields, "csrf": "x"})).status_code == 403

    started = await api.post("/replays", data=fields)
    assert started.status_code == 303, started.text
    replay_path = started.headers["location"]
    assert re.fullmatch(r"/replays/rpl_\w+", replay_path)
    page = await api.get(replay_path)
    assert 'badge running">running' in page.text and 'max="3"' in page.text
    assert f'hx-get="{replay_path}/progress" hx-trigger="every 1s"' in page.text
    assert "Pause" in page.text and "Cancel" in page.text
    listed = await api.get("/replays")
    assert replay_path in listed.text and "0 / 3" in listed.text

    async def done() -> bool:
        r = await api.get(f"{replay_path}/progress", headers=HTMX)
        return 'badge done">done' in r.text

    async with running_worker(settings, pool, redis):
        await wait_for(done, what="the replay to finish")
        await _until_settled(pool, failed)
    progress = await api.get(f"{replay_path}/progress", headers=HTMX)
    assert (
        'value="3" max="3"' in progress.text and "<strong>3</strong> of 3 queued" in progress.text
    )
    assert "every 1s" not in progress.text and "Pause" not in progress.text
    assert set((await _statuses(pool, failed)).values()) == {"succeeded"}
    assert len(receiver.requests) == 3 * 3 + 3  # three attempts each, then once more


async def test_the_replay_form_says_what_is_wrong_next_to_the_field(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey, receiver: Receiver
) -> None:
    endpoint = await _endpoint(api, tenant, "c1", receiver.url)
    csrf = await sign_in(api, pool, tenant)
    r = await api.post(
        "/replays",
        data={"csrf": csrf, "endpoint": endpoint, "missed": "1", "rate": "0", "since": "soon"},
    )
    assert r.status_code == 400
    assert 'id="e-rate"' in r.text and "A whole number from 1 to 1000." in r.text
    assert 'id="e-since"' in r.text and "A date and time like" in r.text
    r = await api.post(
        "/replays", data={"csrf": csrf, "endpoint": endpoint, "since": "0001-01-01T00:00"}
    )
    assert r.status_code == 400 and "between 1970-01-01T00:00:00Z" in r.text  # not a 500
    r = await api.post("/replays", data={"csrf": csrf, "missed": "1"}, headers=HTMX)
    assert r.status_code == 200 and "Required with missed" in r.text  # htmx swaps 2xx only
    r = await api.post(
        "/replays/count", data={"csrf": csrf, "endpoint": "ep_nope", "statuses": "failed"}
    )
    assert r.status_code == 400 and "Pick an endpoint from the list." in r.text
    assert (await pool.fetchval("SELECT count(*) FROM replays")) == 0


async def test_a_replay_pauses_resumes_and_cancels(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey, receiver: Receiver
) -> None:
    endpoint = await _endpoint(api, tenant, "c1", receiver.url)
    csrf = await sign_in(api, pool, tenant)
    started = await api.post(
        "/replays", data={"csrf": csrf, "endpoint": endpoint, "statuses": "failed"}
    )
    path = started.headers["location"]  # no worker runs: it stays running
    assert (await api.post(f"{path}/pause", data={})).status_code == 403

    r = await api.post(f"{path}/pause", data={"csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == path
    page = await api.get(path)
    assert 'badge paused">paused' in page.text and "Resume" in page.text
    assert "every 1s" not in page.text  # nothing moves while paused
    await api.post(f"{path}/resume", data={"csrf": csrf})
    assert 'badge running">running' in (await api.get(path)).text
    await api.post(f"{path}/cancel", data={"csrf": csrf})
    page = await api.get(path)
    assert 'badge cancelled">cancelled' in page.text and "Resume" not in page.text
    r = await api.post(f"{path}/resume", data={"csrf": csrf})
    assert r.status_code == 409 and "a finished replay stays finished" in r.text
    assert (await api.post(f"{path}/explode", data={"csrf": csrf})).status_code == 404
    assert (await api.get("/replays/rpl_nope")).status_code == 404


async def test_a_portal_session_sees_only_its_own_deliveries_and_replays(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey, receiver: Receiver
) -> None:
    mine = await _endpoint(api, tenant, "c1", receiver.url + "/mine")
    theirs = await _endpoint(api, tenant, "c2", receiver.url + "/theirs")
    event = await _send(api, tenant, "order.created")
    by_endpoint = await _deliveries(api, tenant, event)
    own, other = by_endpoint[mine], by_endpoint[theirs]
    await pool.execute("UPDATE deliveries SET status = 'failed' WHERE id = $1", other)
    replay = await api.post(f"/v1/endpoints/{theirs}/replay", headers=tenant.headers, json={})
    other_replay = replay.json()["id"]

    api.cookies.clear()
    csrf = await open_portal(api, api, tenant, "c1")
    page = await api.get("/deliveries")
    assert _shown(page.text, [own, other]) == {own}
    assert "/mine" in page.text and "/theirs" not in page.text  # nor in the endpoint picker
    assert _shown((await api.get("/deliveries/rows")).text, [own, other]) == {own}
    assert _shown((await api.get("/deliveries", params={"endpoint": theirs})).text, [own]) == set()
    assert _shown((await api.get("/dead-letters")).text, [own, other]) == set()
    assert (await api.get(f"/deliveries/{own}")).status_code == 200
    for path in (
        f"/deliveries/{other}",
        f"/deliveries/{other}/live",
        f"/replays/{other_replay}",
        f"/replays/{other_replay}/progress",
    ):
        r = await api.get(path)
        assert r.status_code == 404, path
        assert "theirs" not in r.text
    for path in (f"/deliveries/{other}/retry", f"/replays/{other_replay}/cancel"):
        assert (await api.post(path, data={"csrf": csrf})).status_code == 404, path
    assert await _statuses(pool, [other]) == {other: "failed"}
    assert other_replay not in (await api.get("/replays")).text

    r = await api.post("/replays/count", data={"csrf": csrf, "statuses": "failed"})
    assert r.status_code == 400 and "Pick the endpoint to replay." in r.text
    r = await api.post(
        "/replays/count", data={"csrf": csrf, "endpoint": theirs, "statuses": "failed"}
    )
    assert r.status_code == 400 and "Pick an endpoint from the list." in r.text
    r = await api.post("/replays", data={"csrf": csrf, "endpoint": theirs, "statuses": "failed"})
    assert r.status_code == 400
    r = await api.post(
        "/replays/count", data={"csrf": csrf, "endpoint": mine, "statuses": "failed"}
    )
    assert r.status_code == 200 and "<strong>0</strong> deliveries would be sent again" in r.text
    r = await api.post("/replays", data={"csrf": csrf, "endpoint": mine, "statuses": "failed"})
    assert r.status_code == 303
    assert r.headers["location"] in (await api.get("/replays")).text
    assert (await pool.fetchval("SELECT count(*) FROM replays WHERE endpoint_id = $1", mine)) == 1
