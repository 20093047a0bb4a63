"""An operator's day in Chromium: register an endpoint, watch deliveries arrive live,
open an attempt, rotate the secret, read the overview, and see payloads only as text."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Locator, Page, expect
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.browser.conftest import (
    Seed,
    Site,
    mark,
    no_sideways_scroll,
    not_reloaded,
    shoot,
    sign_in,
    tables_fit,
)
from tests.receiver import Received, Receiver, wait_for

pytestmark = pytest.mark.browser

ORDER_SCHEMA = {
    "type": "object",
    "required": ["order_id"],
    "properties": {"order_id": {"type": "string"}, "total": {"type": "integer"}},
}
ORDER_EXAMPLE = {"order_id": "o_1001", "total": 4200}
WHSEC = re.compile(r"^\s*whsec_[A-Za-z0-9+/=]+\s*$")


async def _catalog(seed: Seed) -> None:
    await seed.event_type(
        "order.created",
        "An order was placed in the shop",
        schema=ORDER_SCHEMA,
        example=ORDER_EXAMPLE,
    )
    await seed.event_type("invoice.paid", "An invoice was paid in full")


def _nav(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


@pytest.mark.usefixtures("worker", "operator")
async def test_an_operator_registers_an_endpoint_and_watches_its_test_event_arrive(
    site: Site, page: Page, seed: Seed, receiver: Receiver
) -> None:
    await _catalog(seed)
    await seed.subscriber("ada", "Ada's Bakery")
    await sign_in(page)

    await _nav(page, "Endpoints").click()
    await expect(page.get_by_text("No endpoints yet")).to_be_visible()
    await shoot(page, "endpoints-empty")
    await page.get_by_role("link", name="New endpoint").first.click()
    await expect(page.get_by_role("heading", name="New endpoint")).to_be_visible()

    # a private address is refused, with the reason next to the URL field
    await page.get_by_label("Subscriber").select_option("ada")
    await page.get_by_label("URL", exact=True).fill("http://10.0.0.5/hook")
    await page.get_by_label("Description").fill("Bakery orders")
    orders = page.get_by_role("checkbox", name="order.created")
    await expect(page.get_by_text("An order was placed in the shop")).to_be_visible()
    await orders.check()
    await page.get_by_role("button", name="Create endpoint").click()
    url_field = page.get_by_label("URL", exact=True)
    await expect(url_field).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#e-url")).to_contain_text("10.0.0.5")
    await expect(page.locator("#e-url")).to_be_visible()
    # what the person typed is still there
    await expect(url_field).to_have_value("http://10.0.0.5/hook")
    await expect(page.get_by_label("Description")).to_have_value("Bakery orders")
    await expect(orders).to_be_checked()
    await shoot(page, "endpoint-form-error")

    await url_field.fill(receiver.url)
    await page.get_by_role("button", name="Create endpoint").click()
    await expect(page.get_by_role("heading", name="Bakery orders")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"/endpoints/[\w-]+$"))
    endpoint_id = page.url.rsplit("/", 1)[-1]
    facts = page.locator("dl.facts")
    await expect(facts).to_contain_text(receiver.url)
    await expect(facts).to_contain_text("order.created")
    await expect(facts).to_contain_text("active")

    # a test event: its delivery appears and turns green while the page stays put
    await mark(page)
    await page.get_by_label("Event type").select_option("order.created")
    await page.get_by_role("button", name="Send test event").click()
    result = page.locator("#test-result")
    await expect(result.locator(".badge")).to_have_text("succeeded")
    await expect(result).to_contain_text("Attempt 1")
    await expect(result).to_contain_text("200")
    await not_reloaded(page)
    assert len(receiver.requests) == 1
    sent = json.loads(receiver.requests[0].body)
    assert sent["type"] == "order.created"
    await shoot(page, "endpoint-detail")

    # the secret: revealed on request, rotated to a new one
    await page.get_by_role("button", name="Reveal secret").click()
    key = page.locator("#secret-key")
    await expect(key).to_have_text(WHSEC)
    old = (await key.inner_text()).strip()
    await page.get_by_role("link", name="Rotate").click()
    await expect(page.get_by_role("heading", name="Rotate the signing secret")).to_be_visible()
    await page.get_by_role("button", name="Rotate the secret").click()
    await expect(page.get_by_role("heading", name="New signing secret")).to_be_visible()
    new = (await page.locator("#secret-key").inner_text()).strip()
    assert new.startswith("whsec_") and new != old
    # the revealed secret is the one the test event was signed with; the new one is current
    StandardWebhook(old).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert (await seed.get(f"/v1/endpoints/{endpoint_id}/secret"))["key"] == new
    await shoot(page, "endpoint-secret-rotated")
    await page.get_by_role("link", name="Back to the endpoint").click()
    await page.get_by_role("button", name="Reveal secret").click()
    await expect(page.locator("#secret-key")).to_have_text(new)

    # the attempt: answer, headers, body and how long it took
    recent = page.get_by_role("row").filter(has_text="order.created")
    await recent.get_by_role("link").first.click()
    await expect(page.get_by_role("heading", name="Delivery of order.created")).to_be_visible()
    attempt = page.locator("#attempt-1")
    await expect(attempt).to_contain_text("Attempt 1")
    await expect(attempt.locator(".http")).to_have_text("200")
    await expect(attempt).to_contain_text(" ms")
    await attempt.get_by_text("Response headers").click()
    await expect(attempt).to_contain_text("x-request-handled-by: shop-api")
    await attempt.get_by_text("Request headers").click()
    await expect(attempt).to_contain_text("webhook-signature")
    await expect(attempt).to_contain_text('{"received": true}')
    await expect(page.locator("pre.payload")).to_contain_text("o_1001")
    await shoot(page, "delivery-detail")


@pytest.mark.usefixtures("worker", "operator")
async def test_the_deliveries_list_shows_new_rows_and_their_outcome_without_a_reload(
    site: Site, page: Page, seed: Seed, receiver: Receiver, broken_receiver: Receiver
) -> None:
    await _catalog(seed)
    await seed.subscriber("ada", "Ada's Bakery")
    await seed.subscriber("bob", "Bob's Garage")
    good = await seed.endpoint("ada", receiver.url, description="Bakery orders")
    bad = await seed.endpoint("bob", broken_receiver.url, description="Garage ERP")
    await sign_in(page)

    await _nav(page, "Deliveries").click()
    await expect(page.get_by_text("No deliveries yet")).to_be_visible()
    await shoot(page, "deliveries-empty")
    await mark(page)

    order = await seed.event("order.created", {"order_id": "o_1", "total": 42}, subject="o_1")
    rows = page.get_by_role("row").filter(has_text=order["id"])
    green = rows.filter(has_text=good["url"])
    red = rows.filter(has_text=bad["url"])
    await expect(green.locator(".badge")).to_have_text("succeeded")
    await expect(green).to_contain_text("200")
    # three attempts 0.2 s and 0.4 s apart, then it is a dead letter
    await expect(red.locator(".badge")).to_have_text("failed")
    await expect(red).to_contain_text("500")
    await expect(red.get_by_role("button", name="Retry")).to_be_visible()

    # a row already on the page changes status: held by a pause, sent on resume
    await seed.patch(f"/v1/endpoints/{good['id']}", {"status": "paused"})
    invoice = await seed.event("invoice.paid", {"invoice_id": "in_7"}, subject="in_7")
    later = page.get_by_role("row").filter(has_text=invoice["id"]).filter(has_text=good["url"])
    await expect(later.locator(".badge")).to_have_text("pending")
    await seed.patch(f"/v1/endpoints/{good['id']}", {"status": "active"})
    await expect(later.locator(".badge")).to_have_text("succeeded")
    await not_reloaded(page)
    await expect(page.locator("tbody tr")).to_have_count(4)
    await shoot(page, "deliveries")
    await tables_fit(page)

    await _nav(page, "Dead letters").click()
    await expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    dead = page.locator("tbody tr")
    await expect(dead).to_have_count(2)
    await expect(dead.first).to_contain_text(bad["url"])
    await shoot(page, "dead-letters")

    await dead.filter(has_text=order["id"]).get_by_role("link").first.click()
    await expect(page.locator("#attempt-3")).to_contain_text("500")
    await expect(page.locator("#attempt-1")).to_be_visible()
    await expect(page.locator("#delivery-live .badge").first).to_have_text("failed")
    await shoot(page, "delivery-failed")


async def _traffic(seed: Seed, receiver: Receiver, broken: Receiver) -> dict[str, Any]:
    """A little of everything: two subscribers, a healthy and a failing endpoint, events."""
    await _catalog(seed)
    await seed.subscriber("ada", "Ada's Bakery")
    await seed.subscriber("bob", "Bob's Garage")
    good = await seed.endpoint("ada", receiver.url, description="Bakery orders")
    bad = await seed.endpoint("bob", broken.url, event_types=["invoice.paid"])
    events = [
        await seed.event("order.created", {"order_id": f"o_{n}", "total": n * 10}, subject=f"o_{n}")
        for n in range(1, 6)
    ]
    events.append(await seed.event("invoice.paid", {"invoice_id": "in_7"}, subject="in_7"))

    async def settled() -> bool:
        found = await seed.deliveries()
        return len(found) == 7 and all(d["status"] in ("succeeded", "failed") for d in found)

    await wait_for(settled, what="every delivery to succeed or fail")
    return {"good": good, "bad": bad, "events": events}


@pytest.mark.usefixtures("worker", "operator")
async def test_the_overview_events_and_catalog_show_what_happened(
    site: Site, page: Page, seed: Seed, receiver: Receiver, broken_receiver: Receiver
) -> None:
    made = await _traffic(seed, receiver, broken_receiver)
    await sign_in(page)

    await _nav(page, "Overview").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    for chart in ("Volume", "Success rate", "Latency"):
        card = page.locator("section").filter(has=page.get_by_role("heading", name=chart))
        await expect(card.locator("svg").first).to_be_visible()
    await expect(page.locator(".stat").filter(has_text="Dead letters")).to_contain_text("1")
    await expect(page.get_by_role("link", name=made["bad"]["url"])).to_be_visible()
    await shoot(page, "overview")
    await tables_fit(page)

    await _nav(page, "Events").click()
    await expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    await expect(page.get_by_label("Event id")).to_have_attribute(
        "placeholder", "evt_… or your own id"
    )
    await expect(page.locator("tbody tr")).to_have_count(6)
    await shoot(page, "events")
    await tables_fit(page)
    invoice = made["events"][-1]
    await page.get_by_role("link", name=invoice["id"]).click()
    await expect(page.locator("pre.payload")).to_contain_text("in_7")
    fanout = page.locator("tbody tr")
    await expect(fanout).to_have_count(2)  # the bakery takes every type, the garage invoices
    await expect(fanout.filter(has_text=made["bad"]["url"]).locator(".badge")).to_have_text(
        "failed"
    )
    await shoot(page, "event-detail")
    await tables_fit(page)

    await _nav(page, "Event types").click()
    await expect(page.get_by_role("heading", name="Event types")).to_be_visible()
    catalog = page.get_by_role("row").filter(has_text="order.created")
    await expect(catalog).to_contain_text("An order was placed in the shop")
    await shoot(page, "event-types")
    await tables_fit(page)
    await page.get_by_role("link", name="order.created").click()
    await expect(page.get_by_text("Version 1")).to_be_visible()
    await expect(page.locator("pre.payload").last).to_contain_text("o_1001")
    await shoot(page, "event-type-detail")
    await tables_fit(page)

    await _nav(page, "Endpoints").click()
    await expect(page.locator("tbody tr")).to_have_count(2)
    await shoot(page, "endpoints")
    await tables_fit(page)


PHONE_PAGES = [
    ("overview", "/"),
    ("endpoints", "/endpoints"),
    ("deliveries", "/deliveries"),
    ("dead-letters", "/dead-letters"),
    ("events", "/events"),
    ("event-types", "/event-types"),
]


@pytest.mark.usefixtures("worker", "operator")
async def test_the_main_pages_fit_a_phone(
    site: Site, page: Page, seed: Seed, receiver: Receiver, broken_receiver: Receiver
) -> None:
    made = await _traffic(seed, receiver, broken_receiver)
    await sign_in(page)
    phone = await site.phone(page)
    delivery = (await seed.deliveries(endpoint=made["good"]["id"]))[0]
    pages = [
        *PHONE_PAGES,
        ("endpoint-detail", f"/endpoints/{made['good']['id']}"),
        ("endpoint-form", "/endpoints/new"),
        ("delivery-detail", f"/deliveries/{delivery['id']}"),
        ("event-detail", f"/events/{made['events'][0]['id']}"),
    ]
    too_wide = []
    for name, path in pages:
        response = await phone.goto(path)
        assert response is not None and response.status == 200, path
        await expect(phone.locator("main h1")).to_be_visible()
        await shoot(phone, f"phone-{name}")
        try:
            await no_sideways_scroll(phone)
        except AssertionError as exc:
            too_wide.append(str(exc))
    assert not too_wide, "\n".join(too_wide)


@pytest.mark.usefixtures("worker", "operator")
async def test_markup_in_payloads_and_answers_shows_as_text(
    site: Site, page: Page, seed: Seed, receiver: Receiver
) -> None:
    async def hostile(got: Received) -> web.Response:
        return web.Response(
            status=200,
            text="<script>alert('from the receiver')</script>",
            headers={"x-evil": "<img src=x onerror=alert(2)>"},
        )

    receiver.respond = hostile
    await seed.subscriber("ada", "<b>Ada</b>")
    endpoint = await seed.endpoint("ada", receiver.url, description="<i>orders</i>")
    event = await seed.event(
        "order.created",
        {"note": "<script>alert('owned')</script>", "html": "<img src=x onerror=alert(1)>"},
        subject="<svg onload=alert(3)>",
    )

    async def delivered() -> bool:
        return any(d["status"] == "succeeded" for d in await seed.deliveries())

    await wait_for(delivered, what="the delivery")
    delivery = (await seed.deliveries())[0]
    await sign_in(page)

    for path in (
        f"/deliveries/{delivery['id']}",
        f"/events/{event['id']}",
        f"/endpoints/{endpoint['id']}",
        "/endpoints",
        "/deliveries",
    ):
        await page.goto(path)
        await expect(page.locator("main h1")).to_be_visible()
        # nothing from the data became an element
        planted = page.locator("main script, main img[src='x'], main svg[onload]")
        assert await planted.count() == 0, path
        await expect(page.locator("main i, main b").filter(has_text="orders")).to_have_count(0)

    await page.goto(f"/deliveries/{delivery['id']}")
    await expect(page.locator("pre.payload")).to_contain_text("<script>alert('owned')</script>")
    await expect(page.locator("pre.payload")).to_contain_text("<img src=x onerror=alert(1)>")
    await expect(page.locator("#attempt-1")).to_contain_text(
        "<script>alert('from the receiver')</script>"
    )
    await page.goto(f"/events/{event['id']}")
    await expect(page.locator("dl.facts")).to_contain_text("<svg onload=alert(3)>")
    await page.goto(f"/endpoints/{endpoint['id']}")
    await expect(page.get_by_role("heading", name="<i>orders</i>")).to_be_visible()
    await shoot(page, "escaped-endpoint")
    assert site.watch.dialogs == []  # and none at all by the end (the site fixture checks)
