"""The endpoint pages, over HTTP in process: an operator and subscribers (portal sessions)
register, edit, pause, test and rotate endpoints, and a subscriber never reaches another's."""

from __future__ import annotations

import html
import ipaddress
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from composition.web import WebApp, build_app
from hookline import endpoints as kernel
from hookline.db import Pool
from hookline.endpoint_secrets import rotate_secret, signing_keys
from hookline.errors import NotFound
from hookline.settings import Settings
from hookline.tenants import create_user
from hookline.vault import Vault
from tests.conftest import TenantKey, running_worker
from tests.dashboard.sessions import EMAIL, PASSWORD, csrf_of, log_in, open_portal
from tests.receiver import Receiver, wait_for

SCRIPT = "<script>alert(1)</script>"


@dataclass
class Browser:
    """A signed-in browser: its cookies, and the CSRF token its pages carry."""

    client: httpx.AsyncClient
    csrf: str = ""

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, **kw)

    async def post(
        self, path: str, data: dict[str, Any] | None = None, **kw: Any
    ) -> httpx.Response:
        return await self.client.post(path, data={"csrf": self.csrf, **(data or {})}, **kw)

    async def htmx(self, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"hx-request": "true", "x-csrf-token": self.csrf}
        return await self.client.post(path, data=data or {}, headers=headers)


def _error_of(page: str, field: str) -> str:
    """The message shown under a form field (empty when there is none)."""
    found = re.search(rf'<small class="error" id="e-{field}">(.*?)</small>', page, re.S)
    return html.unescape(found.group(1)) if found else ""


@pytest.fixture
def app(settings: Settings, pool: Pool, redis: Redis) -> WebApp:
    return build_app(settings, pool, redis)


@pytest.fixture
async def browsers(app: WebApp) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """Open browsers (separate cookie jars) on the one app; all closed at the end."""
    opened: list[httpx.AsyncClient] = []

    def open_one() -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hookline.test"
        )
        opened.append(client)
        return client

    yield open_one
    for client in opened:
        await client.aclose()


@pytest.fixture
async def operator(
    pool: Pool, tenant: TenantKey, browsers: Callable[[], httpx.AsyncClient]
) -> Browser:
    await create_user(pool, tenant.id, EMAIL, PASSWORD)
    browser = Browser(browsers())
    r = await log_in(browser.client)
    assert r.status_code == 303
    browser.csrf = csrf_of((await browser.get("/")).text)
    return browser


@pytest.fixture
async def subscribers(api: httpx.AsyncClient, tenant: TenantKey) -> list[str]:
    for uid, name in (("c1", "Customer One"), ("c2", "Customer Two")):
        r = await api.post(
            "/v1/subscribers", headers=tenant.headers, json={"uid": uid, "name": name}
        )
        assert r.status_code == 201
    return ["c1", "c2"]


@pytest.fixture
async def catalog(api: httpx.AsyncClient, tenant: TenantKey) -> None:
    for name, description in (
        ("order.created", "An order was placed"),
        ("order.shipped", f"It left the warehouse {SCRIPT}"),
    ):
        r = await api.post(
            "/v1/event-types",
            headers=tenant.headers,
            json={"name": name, "description": description},
        )
        assert r.status_code == 201


async def _portal(
    api: httpx.AsyncClient, tenant: TenantKey, browsers: Callable[[], httpx.AsyncClient], uid: str
) -> Browser:
    browser = Browser(browsers())
    browser.csrf = await open_portal(browser.client, api, tenant, uid)
    return browser


async def _endpoint(
    api: httpx.AsyncClient, tenant: TenantKey, subscriber: str, url: str, **fields: Any
) -> dict[str, Any]:
    r = await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={"subscriber": subscriber, "url": url, **fields},
    )
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


async def _read(api: httpx.AsyncClient, tenant: TenantKey, endpoint_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (
        await api.get(f"/v1/endpoints/{endpoint_id}", headers=tenant.headers)
    ).json()
    return found


def _form(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "subscriber": "c1",
        "url": "http://127.0.0.1:9/hook",
        "description": "",
        "ordering": "strict",
        "on_exhausted": "dead_letter",
        "payload": "thin",
        "format": "standard",
        "rate_limit": "",
        "max_in_flight": "10",
        "timeout": "",
        "signature": "hmac",
    }
    values.update(fields)
    return values


async def test_the_list_says_how_to_add_the_first_endpoint_then_shows_them(
    operator: Browser, api: httpx.AsyncClient, tenant: TenantKey, subscribers: list[str]
) -> None:
    page = await operator.get("/endpoints")
    assert page.status_code == 200
    assert "No endpoints yet" in page.text and 'href="/endpoints/new"' in page.text

    ep = await _endpoint(
        api, tenant, "c2", "http://127.0.0.1:9/a", description=SCRIPT, event_types=["x.y"]
    )
    page = await operator.get("/endpoints")
    assert ep["url"] in page.text and f'href="/endpoints/{ep["id"]}"' in page.text
    assert "c2" in page.text and "healthy" in page.text and "x.y" in page.text
    assert SCRIPT not in page.text and html.escape(SCRIPT, quote=False) in page.text


async def test_the_form_offers_the_catalog_types_with_their_descriptions(
    operator: Browser, subscribers: list[str], catalog: None
) -> None:
    page = await operator.get("/endpoints/new")
    assert page.status_code == 200
    for name in ("order.created", "order.shipped"):
        assert f'<input type="checkbox" name="event_types" value="{name}">' in page.text
    assert "An order was placed" in page.text
    assert SCRIPT not in page.text and "&lt;script&gt;" in page.text  # descriptions escaped
    assert "None checked: every event type" in page.text
    assert '<option value="c1">Customer One (c1)</option>' in page.text  # operators pick
    for choice in ("strict", "keyed", "none", "thin", "full", "standard", "cloudevents", "ed25519"):
        assert f'value="{choice}"' in page.text


async def test_problems_show_next_to_their_fields_and_what_was_typed_stays(
    operator: Browser, subscribers: list[str], catalog: None
) -> None:
    typed = _form(
        url="ftp://example.com/hook",
        description="my <b>receiver</b>",
        event_types=["order.shipped"],
        rate_limit="fast",
        max_in_flight="0",
        timeout="99",
        ordering="sideways",
    )
    page = await operator.post("/endpoints", typed)
    assert page.status_code == 422
    assert "is not http or https" in _error_of(page.text, "url")
    assert "whole number of deliveries per second" in _error_of(page.text, "rate_limit")
    assert "from 1 to 1,000" in _error_of(page.text, "max_in_flight")
    assert "from 0.01 to 30" in _error_of(page.text, "timeout")
    assert "choose one of: strict, keyed, none" in page.text
    for value in ('value="ftp://example.com/hook"', 'value="fast"', 'value="0"', 'value="99"'):
        assert value in page.text
    assert 'value="my &lt;b&gt;receiver&lt;/b&gt;"' in page.text
    assert '<input type="checkbox" name="event_types" value="order.shipped" checked>' in page.text
    assert '<option value="c1" selected>' in page.text

    # the kernel's SSRF refusal, next to the URL, saying what to do instead
    page = await operator.post("/endpoints", _form(url="http://10.0.0.5/hook", description="kept"))
    assert page.status_code == 422
    message = _error_of(page.text, "url")
    assert "10.0.0.5 is a private address" in message
    assert "hookline only delivers to public addresses" in message
    assert 'value="kept"' in page.text and 'value="http://10.0.0.5/hook"' in page.text

    page = await operator.post("/endpoints", _form(subscriber=""))
    assert "choose the subscriber" in page.text
    page = await operator.post("/endpoints", _form(subscriber="gone"))
    assert "no such subscriber" in page.text


async def test_creating_redirects_to_the_endpoint_page(
    operator: Browser,
    api: httpx.AsyncClient,
    tenant: TenantKey,
    subscribers: list[str],
    catalog: None,
) -> None:
    fields = _form(
        subscriber="c2",
        url="http://127.0.0.1:9/orders",
        description="Orders <service>",
        event_types=["order.created", "order.shipped"],
        ordering="keyed",
        payload="full",
        format="cloudevents",
        on_exhausted="pause",
        rate_limit="5",
        max_in_flight="3",
        timeout="2.5",
        signature="ed25519",
    )
    r = await operator.post("/endpoints", fields)
    assert r.status_code == 303
    endpoint_id = r.headers["location"].removeprefix("/endpoints/")
    assert endpoint_id.startswith("ep_")

    stored = await _read(api, tenant, endpoint_id)
    assert stored["subscriber"] == "c2" and stored["url"] == "http://127.0.0.1:9/orders"
    assert stored["event_types"] == ["order.created", "order.shipped"]
    assert (stored["ordering"], stored["payload"], stored["format"]) == (
        "keyed",
        "full",
        "cloudevents",
    )
    assert (stored["rate_limit"], stored["max_in_flight"], stored["timeout"]) == (5, 3, 2.5)
    assert (stored["on_exhausted"], stored["signature"]) == ("pause", "ed25519")

    page = await operator.get(r.headers["location"])
    assert page.status_code == 200
    assert "Orders &lt;service&gt;" in page.text and "<service>" not in page.text
    for fact in ("keyed", "5 per second", "2.5 s", "cloudevents", "order.shipped", "healthy"):
        assert fact in page.text
    assert "No deliveries yet" in page.text
    assert f'href="/deliveries?endpoint={endpoint_id}"' in page.text

    # no event type picked: every type (stored as null)
    r = await operator.post("/endpoints", _form(url="http://127.0.0.1:9/all"))
    assert r.status_code == 303
    everything = await _read(api, tenant, r.headers["location"].removeprefix("/endpoints/"))
    assert everything["event_types"] is None and everything["signature"] == "hmac"


async def test_editing_changes_the_fields_and_only_them(
    operator: Browser,
    api: httpx.AsyncClient,
    tenant: TenantKey,
    subscribers: list[str],
    catalog: None,
) -> None:
    ep = await _endpoint(
        api,
        tenant,
        "c1",
        "http://127.0.0.1:9/old",
        event_types=["order.created", "not.in.catalog"],
        headers={"x-team": "billing"},
        timeout=4,
    )
    page = await operator.get(f"/endpoints/{ep['id']}/edit")
    assert page.status_code == 200
    assert 'value="http://127.0.0.1:9/old"' in page.text and 'value="4"' in page.text
    assert 'value="order.created" checked' in page.text
    assert 'value="not.in.catalog" checked' in page.text and "not in the catalog" in page.text
    assert 'name="subscriber"' not in page.text and 'name="signature"' not in page.text

    bad = _form(url="http://127.0.0.1:9/new", max_in_flight="lots")
    page = await operator.post(f"/endpoints/{ep['id']}", bad)
    assert page.status_code == 422 and "from 1 to 1,000" in _error_of(page.text, "max_in_flight")
    assert (await _read(api, tenant, ep["id"]))["url"] == "http://127.0.0.1:9/old"

    changed = _form(
        url="http://127.0.0.1:9/new",
        description="renamed",
        event_types=["order.shipped"],
        ordering="none",
        rate_limit="20",
        timeout="",
    )
    r = await operator.post(f"/endpoints/{ep['id']}", changed)
    assert r.status_code == 303 and r.headers["location"] == f"/endpoints/{ep['id']}"
    stored = await _read(api, tenant, ep["id"])
    assert stored["url"] == "http://127.0.0.1:9/new" and stored["description"] == "renamed"
    assert stored["event_types"] == ["order.shipped"] and stored["ordering"] == "none"
    assert stored["rate_limit"] == 20 and stored["timeout"] is None
    assert stored["headers"] == {"x-team": "billing"}  # not on the form: left alone

    page = await operator.post(f"/endpoints/{ep['id']}", _form(url="http://169.254.169.254/"))
    assert "link-local" in _error_of(page.text, "url")


async def test_the_secret_shows_only_when_revealed_and_rotates(
    operator: Browser, api: httpx.AsyncClient, tenant: TenantKey, subscribers: list[str]
) -> None:
    ep = await _endpoint(api, tenant, "c1", "http://127.0.0.1:9/s")
    url = f"/v1/endpoints/{ep['id']}/secret"
    secret = (await api.get(url, headers=tenant.headers)).json()["key"]
    assert secret.startswith("whsec_")

    page = await operator.get(f"/endpoints/{ep['id']}")
    assert secret not in page.text and "whsec_" not in page.text
    assert f'hx-post="/endpoints/{ep["id"]}/secret/reveal"' in page.text

    fragment = await operator.htmx(f"/endpoints/{ep['id']}/secret/reveal")
    assert fragment.status_code == 200 and secret in fragment.text
    assert "<html" not in fragment.text  # a fragment, not a page
    page = await operator.post(f"/endpoints/{ep['id']}/secret/reveal")  # without htmx
    assert page.status_code == 200 and secret in page.text and "<html" in page.text

    confirm = await operator.get(f"/endpoints/{ep['id']}/secret/rotate")
    assert "keeps signing beside it for 1 day" in confirm.text and secret not in confirm.text
    done = await operator.post(f"/endpoints/{ep['id']}/secret/rotate", {"signature": ""})
    assert done.status_code == 200
    new = (await api.get(url, headers=tenant.headers)).json()["key"]
    assert new != secret and new.startswith("whsec_")
    assert new in done.text and "keeps signing beside it for 1 day" in done.text

    # switching to ed25519 shows the public key, never a private one
    done = await operator.post(f"/endpoints/{ep['id']}/secret/rotate", {"signature": "ed25519"})
    keys = (await api.get(url, headers=tenant.headers)).json()
    assert keys["signature"] == "ed25519" and keys["key"] in done.text
    assert "whsk_" not in done.text
    fragment = await operator.htmx(f"/endpoints/{ep['id']}/secret/reveal")
    assert keys["key"] in fragment.text and "whsk_" not in fragment.text


async def test_pausing_and_resuming(
    operator: Browser, api: httpx.AsyncClient, tenant: TenantKey, subscribers: list[str]
) -> None:
    ep = await _endpoint(api, tenant, "c1", "http://127.0.0.1:9/p")
    r = await operator.post(f"/endpoints/{ep['id']}/pause")
    assert r.status_code == 303 and r.headers["location"] == f"/endpoints/{ep['id']}"
    assert (await _read(api, tenant, ep["id"]))["status"] == "paused"
    page = await operator.get(f"/endpoints/{ep['id']}")
    assert "<strong>Paused</strong>" in page.text
    assert f'action="/endpoints/{ep["id"]}/resume"' in page.text

    r = await operator.post(f"/endpoints/{ep['id']}/resume")
    assert r.status_code == 303 and "replay_since" not in r.headers["location"]
    assert (await _read(api, tenant, ep["id"]))["status"] == "active"
    page = await operator.get(f"/endpoints/{ep['id']}")
    assert "<strong>Paused</strong>" not in page.text
    assert f'action="/endpoints/{ep["id"]}/pause"' in page.text


async def test_a_disabled_endpoint_says_why_and_offers_to_replay_what_it_missed(
    operator: Browser,
    api: httpx.AsyncClient,
    tenant: TenantKey,
    pool: Pool,
    subscribers: list[str],
) -> None:
    ep = await _endpoint(api, tenant, "c1", "http://127.0.0.1:9/d")
    await pool.execute(
        "UPDATE endpoints SET status = 'disabled', disabled_at = now() - interval '1 hour',"
        " status_reason = 'the endpoint answered 410 Gone' WHERE id = $1",
        ep["id"],
    )
    r = await api.post(
        "/v1/events", headers=tenant.headers, json={"type": "order.created", "data": {}}
    )
    assert r.status_code == 202  # not delivered to the disabled endpoint: it misses it

    page = await operator.get(f"/endpoints/{ep['id']}")
    assert "<strong>Disabled</strong> because the endpoint answered 410 Gone" in page.text
    assert ">Re-enable</button>" in page.text

    r = await operator.post(f"/endpoints/{ep['id']}/resume")
    assert r.status_code == 303 and "replay_since=" in r.headers["location"]
    page = await operator.get(r.headers["location"])
    assert "Re-enabled." in page.text and "would send 1" in page.text
    since = re.search(r'name="since" value="([^"]+)"', page.text)
    until = re.search(r'name="until" value="([^"]+)"', page.text)
    assert since and until

    r = await operator.post(
        f"/endpoints/{ep['id']}/replay", {"since": since.group(1), "until": until.group(1)}
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/replays/")
    replay_id = r.headers["location"].removeprefix("/replays/")
    replay = (await api.get(f"/v1/replays/{replay_id}", headers=tenant.headers)).json()
    assert replay["endpoint"] == ep["id"] and replay["filter"]["missed"] is True
    assert replay["total"] == 1


async def test_a_test_event_shows_its_delivery_until_the_attempt_is_in(
    operator: Browser,
    api: httpx.AsyncClient,
    tenant: TenantKey,
    settings: Settings,
    pool: Pool,
    redis: Redis,
    receiver: Receiver,
    subscribers: list[str],
    catalog: None,
) -> None:
    receiver.respond = lambda _: web.Response(status=200, text=f"thanks {SCRIPT}")
    ep = await _endpoint(api, tenant, "c1", receiver.url, event_types=["order.shipped"])
    page = await operator.get(f"/endpoints/{ep['id']}")
    assert '<option value="order.shipped">order.shipped</option>' in page.text

    async with running_worker(settings, pool, redis):
        fragment = await operator.htmx(f"/endpoints/{ep['id']}/test", {"type": "order.shipped"})
        assert fragment.status_code == 200
        found = re.search(r'href="/deliveries/(dlv_[^"]+)"', fragment.text)
        assert found, fragment.text
        poll = f"/endpoints/{ep['id']}/test/{found.group(1)}"
        if "succeeded" not in fragment.text:
            assert f'hx-get="{poll}" hx-trigger="every 1s"' in fragment.text

        async def answered() -> bool:
            nonlocal fragment
            fragment = await operator.get(poll, headers={"hx-request": "true"})
            return "hx-trigger" not in fragment.text

        await wait_for(answered, what="the test delivery to finish")
    assert fragment.status_code == 200 and "succeeded" in fragment.text
    assert '<span class="http c2">200</span> in' in fragment.text and " ms" in fragment.text
    assert SCRIPT not in fragment.text and "thanks &lt;script&gt;" in fragment.text
    assert len(receiver.requests) == 1 and b"order.shipped" in receiver.requests[0].body

    # without htmx: back to the page, which shows the same delivery
    r = await operator.post(f"/endpoints/{ep['id']}/test", {"type": "order.shipped"})
    assert r.status_code == 303 and "?test=dlv_" in r.headers["location"]
    page = await operator.get(r.headers["location"])
    assert 'class="test-delivery"' in page.text

    # a type the endpoint does not take, or a paused endpoint: said so, nothing sent
    fragment = await operator.htmx(f"/endpoints/{ep['id']}/test", {"type": "order.created"})
    assert "Not sent" in fragment.text and "does not receive" in fragment.text
    await operator.post(f"/endpoints/{ep['id']}/pause")
    fragment = await operator.htmx(f"/endpoints/{ep['id']}/test", {"type": "order.shipped"})
    assert "Not sent" in fragment.text and "is paused" in fragment.text


async def test_deleting_asks_first(
    operator: Browser, api: httpx.AsyncClient, tenant: TenantKey, subscribers: list[str]
) -> None:
    ep = await _endpoint(api, tenant, "c1", "http://127.0.0.1:9/x")
    page = await operator.get(f"/endpoints/{ep['id']}/delete")
    assert "cannot be undone" in page.text
    r = await operator.post(f"/endpoints/{ep['id']}/delete")
    assert r.status_code == 303 and r.headers["location"] == "/endpoints"
    r = await api.get(f"/v1/endpoints/{ep['id']}", headers=tenant.headers)
    assert r.status_code == 404
    assert (await operator.get(f"/endpoints/{ep['id']}")).status_code == 404


async def test_a_form_without_the_csrf_token_is_refused(
    operator: Browser, api: httpx.AsyncClient, tenant: TenantKey, subscribers: list[str]
) -> None:
    ep = await _endpoint(api, tenant, "c1", "http://127.0.0.1:9/c")
    client = operator.client
    r = await client.post("/endpoints", data=_form())
    assert r.status_code == 403
    for action in ("pause", "secret/reveal", "secret/rotate", "test", "delete"):
        r = await client.post(f"/endpoints/{ep['id']}/{action}", data={"csrf": "forged"})
        assert r.status_code == 403, action
    r = await client.post(f"/endpoints/{ep['id']}", data=_form(url="http://127.0.0.1:9/z"))
    assert r.status_code == 403
    stored = await _read(api, tenant, ep["id"])
    assert stored["status"] == "active" and stored["url"] == "http://127.0.0.1:9/c"
    listed = (await api.get("/v1/endpoints", headers=tenant.headers)).json()["data"]
    assert len(listed) == 1


async def test_a_subscriber_sees_and_changes_only_its_own_endpoints(
    operator: Browser,
    api: httpx.AsyncClient,
    tenant: TenantKey,
    subscribers: list[str],
    browsers: Callable[[], httpx.AsyncClient],
) -> None:
    mine = await _endpoint(api, tenant, "c1", "http://127.0.0.1:9/mine")
    theirs = await _endpoint(api, tenant, "c2", "http://127.0.0.1:9/theirs")
    theirs_secret = (
        await api.get(f"/v1/endpoints/{theirs['id']}/secret", headers=tenant.headers)
    ).json()["key"]
    portal = await _portal(api, tenant, browsers, "c1")

    page = await portal.get("/endpoints")
    assert mine["url"] in page.text and theirs["url"] not in page.text
    assert 'name="subscriber"' not in page.text  # no filter: it has only its own
    page = await portal.get("/endpoints?subscriber=c2")  # ignored for a subscriber
    assert theirs["url"] not in page.text and mine["url"] in page.text
    assert (await portal.get(f"/endpoints/{mine['id']}")).status_code == 200

    other = theirs["id"]
    for path in (
        f"/endpoints/{other}",
        f"/endpoints/{other}/edit",
        f"/endpoints/{other}/delete",
        f"/endpoints/{other}/secret/rotate",
    ):
        r = await portal.get(path)
        assert r.status_code == 404, path
        assert theirs["url"] not in r.text
    for action in ("secret/reveal", "secret/rotate", "test", "pause", "resume", "delete"):
        r = await portal.post(f"/endpoints/{other}/{action}", {"type": "order.created"})
        assert r.status_code == 404, action
        assert theirs_secret not in r.text
    r = await portal.post(f"/endpoints/{other}", _form(url="http://127.0.0.1:9/stolen"))
    assert r.status_code == 404

    # a delivery of theirs is not shown through an endpoint of mine either
    await api.post(f"/v1/endpoints/{other}/test", headers=tenant.headers, json={"type": "a.b"})
    theirs_deliveries = (
        await api.get(f"/v1/deliveries?endpoint={other}", headers=tenant.headers)
    ).json()["data"]
    assert (
        await portal.get(f"/endpoints/{mine['id']}/test/{theirs_deliveries[0]['id']}")
    ).status_code == 404

    stored = await _read(api, tenant, other)
    assert stored["status"] == "active" and stored["url"] == "http://127.0.0.1:9/theirs"
    after = (await api.get(f"/v1/endpoints/{other}/secret", headers=tenant.headers)).json()
    assert after["key"] == theirs_secret

    # registering from the portal: always for itself, told plainly about private addresses
    form = await portal.get("/endpoints/new")
    assert 'name="subscriber"' not in form.text
    page = await portal.post("/endpoints", _form(url="http://10.1.2.3/x"))
    message = _error_of(page.text, "url")
    assert "use a URL that is reachable from the internet" in message
    assert "HOOKLINE_" not in page.text
    r = await portal.post("/endpoints", _form(subscriber="c2", url="http://127.0.0.1:9/new"))
    assert r.status_code == 303
    created = await _read(api, tenant, r.headers["location"].removeprefix("/endpoints/"))
    assert created["subscriber"] == "c1"

    # the operator sees them all, and can narrow the list to one subscriber
    page = await operator.get("/endpoints")
    for url in (mine["url"], theirs["url"], created["url"]):
        assert url in page.text
    page = await operator.get("/endpoints?subscriber=c2")
    assert theirs["url"] in page.text and mine["url"] not in page.text
    assert (await operator.get(f"/endpoints/{other}")).status_code == 200


async def test_a_failing_endpoint_warns_on_its_page_and_in_the_list(
    operator: Browser,
    api: httpx.AsyncClient,
    tenant: TenantKey,
    pool: Pool,
    subscribers: list[str],
) -> None:
    ep = await _endpoint(api, tenant, "c1", "http://127.0.0.1:9/f")
    await pool.execute(
        "UPDATE endpoints SET consecutive_failures = 17, health_warning = 90,"
        " failing_since = now() - interval '4 days 12 hours' WHERE id = $1",
        ep["id"],
    )
    page = await operator.get(f"/endpoints/{ep['id']}")
    assert '<div class="alert error" role="alert">' in page.text
    assert "<strong>Failing</strong> since" in page.text and "(4 d ago)" in page.text
    assert "17 attempts in a row have failed" in page.text and "used 90%" in page.text
    page = await operator.get("/endpoints")
    assert "failing" in page.text and "17 in a row" in page.text and "warned at 90%" in page.text


async def test_the_kernel_scope_keeps_a_subscriber_to_its_own_endpoints(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    pool: Pool,
    subscribers: list[str],
    settings: Settings,
) -> None:
    """What the pages rely on, one kernel function at a time (the API passes no scope)."""
    mine = await _endpoint(api, tenant, "c1", "http://127.0.0.1:9/mine")
    theirs = await _endpoint(api, tenant, "c2", "http://127.0.0.1:9/theirs")
    me = await pool.fetchval("SELECT subscriber_id FROM endpoints WHERE id = $1", mine["id"])
    t, other, nets = tenant.id, theirs["id"], [ipaddress.ip_network("127.0.0.0/8")]
    vault = Vault.from_settings(settings)

    listed = await kernel.list_endpoints(pool, t, None, None, 10, subscriber_id=me)
    assert [e["id"] for e in listed] == [mine["id"]]
    assert len(await kernel.list_endpoints(pool, t, None, None, 10)) == 2
    assert (await kernel.get_endpoint(pool, t, mine["id"], me))["id"] == mine["id"]
    attempts: list[Awaitable[Any]] = [
        kernel.get_endpoint(pool, t, other, me),
        kernel.update_endpoint(pool, t, other, nets, {"status": "paused"}, me, vault=vault),
        kernel.update_endpoint(pool, t, other, nets, {"status": "active"}, me, vault=vault),
        signing_keys(pool, t, other, me, vault=vault),
        rotate_secret(pool, t, other, 60, subscriber_id=me, vault=vault),
        kernel.send_test_event(pool, t, other, "a.b", None, me),
        kernel.delete_endpoint(pool, t, other, me),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            await attempt
    untouched = await _read(api, tenant, other)
    assert untouched["status"] == "active"
    keys = await pool.fetchval(
        "SELECT count(*) FROM endpoint_secrets WHERE endpoint_id = $1", other
    )
    assert keys == 1
