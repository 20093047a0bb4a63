"""Signing in, in Chromium: the form, its error, the frame it opens on."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import EMAIL, PASSWORD, Site, no_sideways_scroll, shoot

pytestmark = pytest.mark.browser


@pytest.mark.usefixtures("operator")
async def test_an_operator_signs_in_through_the_form(site: Site, page: Page) -> None:
    await page.goto("/deliveries")  # a signed-out visitor is sent to the form
    await expect(page).to_have_url(f"{site.base_url}/login?next=/deliveries")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await shoot(page, "login")

    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "That email and password do not match an operator."
    )
    await expect(page.get_by_label("Email")).to_have_value(EMAIL)  # kept for the next try
    await expect(page.get_by_label("Password")).to_have_value("")
    await shoot(page, "login-error")

    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{site.base_url}/deliveries")  # where they were going
    await expect(page.get_by_role("heading", name="Deliveries", exact=True)).to_be_visible()
    topbar = page.get_by_role("banner")
    await expect(topbar).to_contain_text("Acme")
    await expect(topbar).to_contain_text(EMAIL)
    await expect(page.get_by_role("link", name="Deliveries", exact=True)).to_have_attribute(
        "aria-current", "page"
    )

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.goto("/")
    await expect(page).to_have_url(f"{site.base_url}/login")


async def test_the_login_page_fits_a_phone(site: Site) -> None:
    phone = await site.page(viewport={"width": 390, "height": 844}, is_mobile=True)
    await phone.goto("/login")
    await expect(phone.get_by_role("button", name="Sign in")).to_be_visible()
    await no_sideways_scroll(phone)
    await shoot(phone, "phone-login")
