"""Signing in and out of the dashboard, over HTTP (the browser tests drive the same pages)."""

from __future__ import annotations

import re

import httpx
import pytest

from hookline.db import Pool
from hookline.tenants import create_user
from tests.conftest import TenantKey
from tests.dashboard.sessions import EMAIL, PASSWORD, csrf_of


@pytest.fixture
async def operator(pool: Pool, tenant: TenantKey) -> str:
    return await create_user(pool, tenant.id, EMAIL, PASSWORD)


async def _login(api: httpx.AsyncClient, password: str = PASSWORD, **extra: str) -> httpx.Response:
    return await api.post("/login", data={"email": EMAIL, "password": password, **extra})


async def test_a_signed_out_visitor_is_sent_to_the_login_form(api: httpx.AsyncClient) -> None:
    r = await api.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    r = await api.get("/", headers={"hx-request": "true"})  # a live fragment's poll
    assert r.status_code == 204 and r.headers["hx-redirect"] == "/login"
    r = await api.get("/login")
    assert r.status_code == 200 and 'type="password"' in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]


async def test_login_sets_a_fresh_httponly_samesite_cookie_and_logout_ends_it(
    api: httpx.AsyncClient, operator: str
) -> None:
    api.cookies.set("hookline_session", "hks_planted-before-login")
    r = await _login(api, next="/deliveries")
    assert r.status_code == 303 and r.headers["location"] == "/deliveries"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    token = r.cookies["hookline_session"]
    assert token.startswith("hks_") and token != "hks_planted-before-login"
    api.cookies.clear()
    api.cookies.set("hookline_session", token)
    page = await api.get("/")
    assert page.status_code == 200 and EMAIL in page.text and "Acme" in page.text

    r = await api.post("/logout", data={"csrf": "wrong"})
    assert r.status_code == 403  # no logging people out from another site
    r = await api.post("/logout", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303
    api.cookies.set("hookline_session", token)
    assert (await api.get("/")).status_code == 303  # the session is gone server-side


async def test_a_wrong_password_says_so_and_failures_are_throttled(
    api: httpx.AsyncClient, operator: str
) -> None:
    r = await _login(api, password="nope-nope")
    assert r.status_code == 400 and "do not match" in r.text
    assert "hookline_session" not in r.cookies
    for _ in range(4):
        await _login(api, password="nope-nope")
    r = await _login(api)  # even the right password waits now
    assert r.status_code == 429 and "Try again in" in r.text
    assert int(r.headers["retry-after"]) > 0
    assert "hookline_session" not in r.cookies


async def test_an_unknown_email_answers_like_a_wrong_password(api: httpx.AsyncClient) -> None:
    r = await api.post("/login", data={"email": "who@else.test", "password": "whatever1"})
    assert r.status_code == 400 and "do not match" in r.text


async def test_next_never_leads_off_site(api: httpx.AsyncClient, operator: str) -> None:
    for target in ("https://evil.test/", "//evil.test/x", "/\\evil.test"):
        r = await _login(api, next=target)
        assert r.headers["location"] == "/", target
        api.cookies.clear()


async def test_a_post_from_another_site_is_refused(api: httpx.AsyncClient, operator: str) -> None:
    r = await api.post(
        "/login",
        data={"email": EMAIL, "password": PASSWORD},
        headers={"origin": "https://evil.test"},
    )
    assert r.status_code == 403


async def test_a_portal_link_is_redeemed_by_the_button_not_by_opening_it(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c1", "name": "Cust"})
    link = (
        await api.post("/v1/subscribers/c1/portal-link", headers=tenant.headers, json={})
    ).json()["url"]
    path = link[link.index("/portal/login") :]
    for _ in range(2):  # a mail scanner's prefetch uses nothing up
        r = await api.get(path)
        assert r.status_code == 200 and "Open the portal" in r.text
    token = re.search(r'name="token" value="([^"]+)"', r.text)
    assert token
    r = await api.post("/portal/login", data={"token": token.group(1)})
    assert r.status_code == 303 and r.headers["location"] == "/"
    page = await api.get("/")
    assert "Webhooks from" in page.text and "Acme" in page.text and "Cust" in page.text
    api.cookies.clear()
    r = await api.post("/portal/login", data={"token": token.group(1)})
    assert r.status_code == 400 and "used already" in r.text
