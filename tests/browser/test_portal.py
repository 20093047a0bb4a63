"""The subscriber portal in Chromium: a magic link opens a session that sees one
subscriber's endpoints, deliveries and events, and another subscriber's ids are a 404."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Seed, Site, no_sideways_scroll, shoot
from tests.receiver import Receiver, wait_for

pytestmark = pytest.mark.browser


async def _delivered(seed: Seed, endpoint: dict[str, Any]) -> dict[str, Any]:
    """The endpoint's one delivery, once it has succeeded."""
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        found[:] = await seed.deliveries(endpoint=endpoint["id"], status="succeeded")
        return bool(found)

    await wait_for(done, what=f"a delivery to {endpoint['url']}")
    return found[0]


async def _open_portal(site: Site, link: str) -> Page:
    """Open a magic link in a browser of its own and press its button."""
    page = await site.page()
    await page.goto(link)
    await expect(page.get_by_role("heading", name="Your webhooks")).to_be_visible()
    await shoot(page, "portal-link")
    await page.get_by_role("button", name="Open the portal").click()
    await expect(page.get_by_role("banner")).to_contain_text("Webhooks from Acme")
    return page


async def _is_not_found(page: Page, path: str) -> None:
    response = await page.goto(path)
    assert response is not None and response.status == 404, f"{path} did not answer 404"
    await expect(page.get_by_role("heading", name="Not found")).to_be_visible()


@pytest.mark.usefixtures("worker")
async def test_a_subscriber_sees_only_its_own_webhooks(
    site: Site, seed: Seed, receiver: Receiver
) -> None:
    await seed.event_type("order.created", "An order was placed in the shop")
    await seed.event_type("invoice.paid", "An invoice was paid in full")
    await seed.subscriber("ada", "Ada's Bakery")
    await seed.subscriber("bob", "Bob's Garage")
    ada = await seed.endpoint(
        "ada", f"{receiver.url}/ada", event_types=["order.created"], description="Orders"
    )
    bob = await seed.endpoint("bob", f"{receiver.url}/bob", event_types=["invoice.paid"])
    order = await seed.event("order.created", {"order_id": "o_1", "total": 42}, subject="o_1")
    invoice = await seed.event("invoice.paid", {"invoice_id": "in_7"}, subject="in_7")
    ada_delivery = await _delivered(seed, ada)
    bob_delivery = await _delivered(seed, bob)

    page = await _open_portal(site, await seed.portal_link("ada"))
    await expect(page.get_by_role("banner")).to_contain_text("Ada's Bakery")
    # the operator's tools are not there
    await expect(page.get_by_role("link", name="API reference")).to_have_count(0)
    await shoot(page, "portal-overview")

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Endpoints").click()
    await expect(page.get_by_role("heading", name="Endpoints")).to_be_visible()
    await expect(page.get_by_text(bob["url"])).to_have_count(0)
    await shoot(page, "portal-endpoints")
    await page.get_by_role("link", name=ada["url"]).click()
    await expect(page.get_by_role("heading", name="Orders")).to_be_visible()
    await expect(page.get_by_role("button", name="Send test event")).to_be_visible()
    await shoot(page, "portal-endpoint-detail")

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Deliveries").click()
    row = page.get_by_role("row").filter(has_text=order["id"])
    await expect(row).to_contain_text("succeeded")
    await expect(page.get_by_text(invoice["id"])).to_have_count(0)
    await expect(page.locator("tbody tr")).to_have_count(1)
    await shoot(page, "portal-deliveries")

    await row.get_by_role("link", name="order.created").click()
    await expect(page).to_have_url(f"{site.base_url}/deliveries/{ada_delivery['id']}")
    await expect(page.locator("#attempt-1")).to_contain_text("200")

    await page.goto(f"/events/{order['id']}")  # its own event opens
    await expect(page.locator("pre.payload")).to_contain_text("o_1")

    # ids of the other subscriber: a 404 page in the frame, never the page
    await _is_not_found(page, f"/endpoints/{bob['id']}")
    await shoot(page, "portal-not-found")
    await _is_not_found(page, f"/deliveries/{bob_delivery['id']}")
    await _is_not_found(page, f"/events/{invoice['id']}")
    await _is_not_found(page, f"/endpoints/{bob['id']}/edit")

    phone = await site.phone(page)
    await phone.goto("/deliveries")
    await expect(phone.get_by_role("row").filter(has_text=order["id"])).to_be_visible()
    await no_sideways_scroll(phone)
    await shoot(phone, "phone-portal-deliveries")


async def test_a_used_portal_link_says_to_ask_for_a_new_one(site: Site, seed: Seed) -> None:
    await seed.subscriber("ada", "Ada's Bakery")
    link = await seed.portal_link("ada")
    await _open_portal(site, link)

    again = await site.page()
    await again.goto(link)
    await again.get_by_role("button", name="Open the portal").click()
    await expect(again.get_by_role("alert")).to_contain_text("used already")
    await expect(again.get_by_role("navigation", name="Main")).to_have_count(0)
