"""Signing in to the dashboard from tests, as a browser would: the login form, or a
portal link and its button (each form fetched first, for its login token and cookie); and
the CSRF token a page carries."""

from __future__ import annotations

import re

import httpx

from hookline.db import Pool
from hookline.tenants import create_user
from tests.conftest import TenantKey

EMAIL, PASSWORD = "ops@acme.test", "correct horse battery"


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def login_token_of(page: str) -> str:
    """The login token in a login form (the /login page, a portal link's page)."""
    found = re.search(r'name="login_csrf" value="([^"]+)"', page)
    assert found, "no login token on the page"
    return found.group(1)


async def login_form(api: httpx.AsyncClient, path: str = "/login") -> str:
    """GET a login form, as a browser opens it (which sets the login cookie in ``api``);
    its login token."""
    r = await api.get(path)
    assert r.status_code == 200, r.text
    return login_token_of(r.text)


async def log_in(
    client: httpx.AsyncClient, email: str = EMAIL, password: str = PASSWORD, **extra: str
) -> httpx.Response:
    """Open the login form in ``client`` and send it with ``email`` and ``password`` (and
    any ``extra`` fields, ``next`` say); the answer, whatever it is."""
    token = await login_form(client)
    fields = {"email": email, "password": password, "login_csrf": token, **extra}
    return await client.post("/login", data=fields)


async def sign_in(api: httpx.AsyncClient, pool: Pool, tenant: TenantKey) -> str:
    """Make an operator of ``tenant`` and sign in through the form; the session's CSRF
    token."""
    await create_user(pool, tenant.id, EMAIL, PASSWORD)
    r = await log_in(api)
    assert r.status_code == 303, r.text
    return csrf_of((await api.get("/")).text)


async def open_portal(
    client: httpx.AsyncClient, api: httpx.AsyncClient, tenant: TenantKey, uid: str
) -> str:
    """Open a portal link for subscriber ``uid`` (made through ``api``) in ``client`` and
    press its button; the session's CSRF token."""
    r = await api.post(f"/v1/subscribers/{uid}/portal-link", headers=tenant.headers, json={})
    url = r.json()["url"]
    page = await client.get(url[url.index("/portal/login") :])
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token, "no token on the portal page"
    r = await client.post(
        "/portal/login", data={"token": token.group(1), "login_csrf": login_token_of(page.text)}
    )
    assert r.status_code == 303, r.text
    return csrf_of((await client.get("/")).text)
