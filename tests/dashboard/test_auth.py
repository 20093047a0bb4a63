"""Signing in and out of the dashboard, over HTTP (the browser tests drive the same pages):
the login token of the two forms without a session, the throttle under a race, argon2 kept
off the event loop, and forms too large to read."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from composition.web import build_app
from dashboard.auth import LOGIN_TTL, MAX_PER_ADDRESS, MAX_PER_EMAIL, WINDOW, _login_mac
from dashboard.web import LOGIN_FORM, PAGE_FORM
from hookline.db import Pool
from hookline.secrets import verify_password
from hookline.sessions import _DUMMY_HASH, PasswordChecks
from hookline.settings import Settings
from hookline.tenants import create_user
from tests.conftest import TenantKey
from tests.dashboard.sessions import (
    EMAIL,
    PASSWORD,
    csrf_of,
    log_in,
    login_form,
    login_token_of,
    sign_in,
)
from tests.receiver import wait_for

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def operator(pool: Pool, tenant: TenantKey) -> str:
    return await create_user(pool, tenant.id, EMAIL, PASSWORD)


async def _login(api: httpx.AsyncClient, password: str = PASSWORD, **extra: str) -> httpx.Response:
    return await log_in(api, EMAIL, password, **extra)


async def _portal_page(api: httpx.AsyncClient, tenant: TenantKey, uid: str = "c1") -> str:
    """A new portal link for ``uid`` (made if need be), opened in ``api``: the page."""
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": uid, "name": "Cust"})
    r = await api.post(f"/v1/subscribers/{uid}/portal-link", headers=tenant.headers, json={})
    link = r.json()["url"]
    page = await api.get(link[link.index("/portal/login") :])
    assert page.status_code == 200 and "Open the portal" in page.text
    return page.text


def _portal_token(page: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found, "no token on the portal page"
    return found.group(1)


async def test_a_signed_out_visitor_is_sent_to_the_login_form(api: httpx.AsyncClient) -> None:
    r = await api.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    r = await api.get("/", headers={"hx-request": "true"})  # a live fragment's poll
    assert r.status_code == 204 and r.headers["hx-redirect"] == "/login"
    r = await api.get("/login")
    assert r.status_code == 200 and 'type="password"' in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    cookie = r.headers["set-cookie"]  # the login token's nonce, for this form only
    assert cookie.startswith("hookline_login=") and "HttpOnly" in cookie
    assert "SameSite=lax" in cookie and "Max-Age=3600" in cookie
    assert login_token_of(r.text)


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
    assert 'hookline_login=""' in cookie  # the login token is spent with the login
    api.cookies.clear()
    api.cookies.set("hookline_session", token)
    page = await api.get("/")
    assert page.status_code == 200 and EMAIL in page.text and "Acme" in page.text

    for forged in ("wrong", "é"):  # not even a token the comparison cannot take: 403
        r = await api.post("/logout", data={"csrf": forged})
        assert r.status_code == 403  # no logging people out from another site
    r = await api.post("/logout", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303
    api.cookies.set("hookline_session", token)
    assert (await api.get("/")).status_code == 303  # the session is gone server-side


@pytest.mark.slow
async def test_a_wrong_password_says_so_and_failures_are_throttled(
    api: httpx.AsyncClient, operator: str
) -> None:
    r = await _login(api, password="nope-nope")
    assert r.status_code == 400 and "do not match" in r.text
    assert "hookline_session" not in r.cookies
    assert login_token_of(r.text)  # the form shown again can be sent again
    for _ in range(4):
        await _login(api, password="nope-nope")
    r = await _login(api)  # even the right password waits now
    assert r.status_code == 429 and "Try again in 15 min" in r.text
    assert 0 < int(r.headers["retry-after"]) <= WINDOW
    assert "hookline_session" not in r.cookies


async def test_an_unknown_email_answers_like_a_wrong_password(api: httpx.AsyncClient) -> None:
    r = await log_in(api, "who@else.test", "whatever1")
    assert r.status_code == 400 and "do not match" in r.text


async def test_next_never_leads_off_site(api: httpx.AsyncClient, operator: str) -> None:
    for target in ("https://evil.test/", "//evil.test/x", "/\\evil.test"):
        r = await _login(api, next=target)
        assert r.headers["location"] == "/", target
        api.cookies.clear()


# -- login CSRF: the login token ----------------------------------------------------------


@pytest.mark.parametrize("origin", [None, "null"])
async def test_a_login_without_its_login_token_is_refused_whatever_the_origin_says(
    api: httpx.AsyncClient, operator: str, origin: str | None
) -> None:
    """Another site can post a form from a sandboxed frame (Origin: null) or get the Origin
    left out; without the token of a form this browser opened here, no one signs in."""
    headers = {"origin": origin} if origin else {}
    token = await login_form(api)
    fields = {"email": EMAIL, "password": PASSWORD}
    for sent in (None, "", "1.abc", "é.é", token + "x", "x" * 500):
        data = fields if sent is None else {**fields, "login_csrf": sent}
        r = await api.post("/login", data=data, headers=headers)
        assert r.status_code == 403, sent
        assert "Not allowed" in r.text and "Reload the page" in r.text
        assert "hookline_session" not in r.cookies

    other = httpx.AsyncClient(transport=api._transport, base_url=str(api.base_url))
    async with other:  # a token from another browser does not go with this one's cookie
        theirs = await login_form(other)
    r = await api.post("/login", data={**fields, "login_csrf": theirs}, headers=headers)
    assert r.status_code == 403
    cookie_jar = dict(api.cookies)
    api.cookies.clear()  # nor does a token without any cookie
    r = await api.post("/login", data={**fields, "login_csrf": token}, headers=headers)
    assert r.status_code == 403

    for name, value in cookie_jar.items():
        api.cookies.set(name, value)
    r = await api.post("/login", data={**fields, "login_csrf": token}, headers=headers)
    assert r.status_code == 303 and r.cookies["hookline_session"].startswith("hks_")


async def test_a_login_token_is_good_for_an_hour_under_the_current_or_an_earlier_key(
    api: httpx.AsyncClient, operator: str, settings: Settings
) -> None:
    await login_form(api)
    nonce = api.cookies["hookline_login"]
    assert settings.secret_key

    def made(seconds_ago: int, key: str) -> str:
        issued = int(time.time()) - seconds_ago
        return f"{issued}.{_login_mac(key.encode(), issued, nonce).decode()}"

    fields = {"email": EMAIL, "password": PASSWORD}
    for sent in (made(LOGIN_TTL + 5, settings.secret_key), made(0, "another-key-" + "y" * 32)):
        r = await api.post("/login", data={**fields, "login_csrf": sent})
        assert r.status_code == 403 and "expired" in r.text
    r = await api.post(
        "/login", data={**fields, "login_csrf": made(LOGIN_TTL - 60, settings.secret_key)}
    )
    assert r.status_code == 303


async def test_behind_https_the_login_cookie_is_host_only_and_secure(
    settings: Settings, pool: Pool, redis: Redis, operator: str
) -> None:
    """``__Host-``: a sibling subdomain cannot plant a nonce of its own."""
    app = build_app(
        settings.model_copy(update={"public_url": "https://hookline.test"}), pool, redis
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://hookline.test") as client:
        page = await client.get("/login")
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-hookline_login=") and "Secure" in cookie
        assert "Path=/" in cookie and "Domain" not in cookie
        client.cookies.set("hookline_login", client.cookies["__Host-hookline_login"])
        fields = {"email": EMAIL, "password": PASSWORD, "login_csrf": login_token_of(page.text)}
        client.cookies.delete("__Host-hookline_login")  # the plain name does not count here
        assert (await client.post("/login", data=fields)).status_code == 403
        fields["login_csrf"] = await login_form(client)  # a new nonce, rightly named
        r = await client.post("/login", data=fields)
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


async def test_a_login_from_this_site_works_and_from_another_is_refused(
    api: httpx.AsyncClient, operator: str
) -> None:
    token = await login_form(api)
    fields = {"email": EMAIL, "password": PASSWORD, "login_csrf": token}
    r = await api.post("/login", data=fields, headers={"origin": "https://evil.test"})
    assert r.status_code == 403 and "another site" in r.text  # even with the token
    assert "hookline_session" not in r.cookies
    r = await api.post("/login", data=fields, headers={"origin": "http://hookline.test"})
    assert r.status_code == 303 and "hookline_session" in r.cookies


@pytest.mark.parametrize("origin", [None, "null"])
async def test_a_portal_link_is_not_redeemed_without_the_login_token(
    api: httpx.AsyncClient, tenant: TenantKey, origin: str | None
) -> None:
    headers = {"origin": origin} if origin else {}
    page = await _portal_page(api, tenant)
    link = _portal_token(page)
    for sent in (None, "1.abc", login_token_of(page) + "x"):
        data = {"token": link} if sent is None else {"token": link, "login_csrf": sent}
        r = await api.post("/portal/login", data=data, headers=headers)
        assert r.status_code == 403 and "Not allowed" in r.text, sent
        assert "hookline_session" not in r.cookies
    good = {"token": link, "login_csrf": login_token_of(page)}
    r = await api.post("/portal/login", data=good, headers={"origin": "https://evil.test"})
    assert r.status_code == 403 and "another site" in r.text
    r = await api.post("/portal/login", data=good, headers=headers)  # the link is unused
    assert r.status_code == 303 and r.cookies["hookline_session"].startswith("hks_")
    portal = await api.get("/")
    assert "Webhooks from" in portal.text and "Cust" in portal.text


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
    token = _portal_token(r.text)
    fields = {"token": token, "login_csrf": login_token_of(r.text)}
    r = await api.post("/portal/login", data=fields, headers={"origin": "http://hookline.test"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    page = await api.get("/")
    assert "Webhooks from" in page.text and "Acme" in page.text and "Cust" in page.text
    api.cookies.clear()
    fields["login_csrf"] = await login_form(api, path)
    r = await api.post("/portal/login", data=fields)
    assert r.status_code == 400 and "used already" in r.text


# -- the throttle under a race ------------------------------------------------------------


async def _race(api: httpx.AsyncClient, emails: list[str]) -> Counter[int]:
    """One wrong password per entry of ``emails``, all sent at once; the statuses."""
    token = await login_form(api)
    answers = await asyncio.gather(
        *(
            api.post("/login", data={"email": e, "password": "nope-nope", "login_csrf": token})
            for e in emails
        )
    )
    for r in answers:
        if r.status_code == 400:
            assert "do not match" in r.text  # its password was checked
        else:
            assert r.status_code == 429 and "Try again in 15 min" in r.text
            assert 0 < int(r.headers["retry-after"]) <= WINDOW
    return Counter(r.status_code for r in answers)


async def test_a_race_of_wrong_passwords_for_one_email_checks_only_five(
    api: httpx.AsyncClient, operator: str
) -> None:
    statuses = await _race(api, [EMAIL] * 100)
    print(f"100 concurrent wrong logins for one email: {dict(statuses)}")
    assert statuses == {400: MAX_PER_EMAIL, 429: 100 - MAX_PER_EMAIL}
    r = await _login(api)  # the right password waits too
    assert r.status_code == 429 and "hookline_session" not in r.cookies


@pytest.mark.slow
async def test_a_race_of_wrong_passwords_from_one_address_checks_only_thirty(
    api: httpx.AsyncClient, operator: str
) -> None:
    statuses = await _race(api, [f"who{i}@else.test" for i in range(100)])
    print(f"100 concurrent wrong logins from one address: {dict(statuses)}")
    assert statuses == {400: MAX_PER_ADDRESS, 429: 100 - MAX_PER_ADDRESS}
    r = await _login(api)
    assert r.status_code == 429


@pytest.mark.slow
async def test_the_right_password_clears_the_email_and_gives_the_address_its_try_back(
    api: httpx.AsyncClient, operator: str, redis: Redis, settings: Settings
) -> None:
    for _ in range(MAX_PER_EMAIL - 1):
        assert (await _login(api, password="nope-nope")).status_code == 400
    assert (await _login(api)).status_code == 303
    api.cookies.clear()
    address = await redis.get(f"{settings.namespace}:login:addr:127.0.0.1")
    assert int(address) == MAX_PER_EMAIL - 1  # the failures count; the success does not
    statuses = await _race(api, [EMAIL] * 10)  # a whole new allowance for the email
    assert statuses == {400: MAX_PER_EMAIL, 429: 10 - MAX_PER_EMAIL}


@pytest.mark.slow
async def test_without_redis_logins_are_not_counted_and_no_one_is_locked_out(
    settings: Settings, pool: Pool, operator: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    app = build_app(settings, pool, dead)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as client:
        for _ in range(MAX_PER_EMAIL + 2):
            assert (await _login(client, password="nope-nope")).status_code == 400
        assert (await _login(client)).status_code == 303
    await dead.aclose()
    assert "login throttle unavailable" in caplog.text


# -- argon2 off the event loop ------------------------------------------------------------


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # leave Ctrl-C to pytest


@pytest.fixture
async def live(settings: Settings, pool: Pool, redis: Redis) -> AsyncIterator[str]:
    """The app behind uvicorn on a real socket, in the test's event loop: what a client
    waits for there is what the loop makes it wait for (an in-process call never waits)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        build_app(settings, pool, redis), log_level="warning", access_log=False, lifespan="off"
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_for(lambda: server.started or task.done(), what="the server")
    assert server.started
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await task
    sock.close()


@pytest.mark.slow
async def test_health_answers_at_once_while_a_burst_of_logins_is_checked(
    live: str, operator: str
) -> None:
    """20 logins at once over HTTP, each checking a real argon2 hash (the operator's, or
    the one an unknown email is checked against), while /healthz is asked again and again
    on another connection. Were the hashes checked on the event loop, a typical /healthz
    would wait for at least one of them (measured: a median of two checks' time, against
    under half of one off the loop). The bounds are in checks, as long as one takes on this
    machine now, so the test judges where the hashing runs rather than how busy the machine
    is: the pages' own work for 20 logins is on the loop, and once took ~260 ms under CI
    load."""
    one_check = await _time_one_check()
    async with (
        httpx.AsyncClient(base_url=live, timeout=30) as browser,
        httpx.AsyncClient(base_url=live, timeout=30) as probe,
    ):
        token = await login_form(browser)
        assert (await probe.get("/healthz")).status_code == 200  # connected beforehand
        emails = [EMAIL, *(f"who{i}@else.test" for i in range(19))]
        began = time.perf_counter()
        burst = asyncio.gather(
            *(
                browser.post(
                    "/login", data={"email": e, "password": "nope-nope", "login_csrf": token}
                )
                for e in emails
            )
        )
        took: list[float] = []
        while not burst.done():
            asked = time.perf_counter()
            r = await probe.get("/healthz")
            took.append(time.perf_counter() - asked)
            assert r.status_code == 200
        answers = await burst
        lasted = time.perf_counter() - began
    assert [r.status_code for r in answers] == [400] * 20  # every hash was checked
    print(
        f"burst of 20 logins took {lasted:.2f} s; /healthz asked {len(took)} times meanwhile, "
        f"worst {max(took) * 1000:.1f} ms"
    )
    assert len(took) >= 5, "the burst was over before /healthz could be asked"
    check = f"one check takes {one_check * 1000:.0f} ms here"
    assert statistics.median(took) < one_check, check
    assert max(took) < 10 * one_check, check


async def _time_one_check() -> float:
    """How long one argon2 check takes here now, in a thread as the app runs them."""
    started = time.perf_counter()
    await asyncio.to_thread(verify_password, _DUMMY_HASH, "nope-nope")
    return time.perf_counter() - started


# -- forms too large to read ----------------------------------------------------------------


class Endless:
    """A request body made only as it is read (``total`` bytes at most), counting what the
    server took of it."""

    def __init__(self, start: bytes, total: int, chunk: int = 16 * 1024) -> None:
        self.start, self.total, self.chunk, self.read = start, total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        piece = self.start
        while self.read < self.total:
            piece = piece or b"a" * self.chunk
            self.read += len(piece)
            yield piece
            piece = b""


@pytest.mark.parametrize("path", ["/login", "/portal/login"])
async def test_an_oversized_login_form_is_refused_before_it_is_read(
    api: httpx.AsyncClient, path: str
) -> None:
    big = 100 * 1024 * 1024
    body = Endless(b"email=a%40b.test&password=", big)
    declared = {**FORM, "content-length": str(big)}
    r = await api.post(path, content=body, headers=declared)
    assert r.status_code == 413 and "Too large" in r.text and "16 KiB" in r.text
    assert body.read == 0  # refused by its Content-Length: not a byte was read
    print(f"{path}: 100 MB declared: 413 after reading {body.read} bytes")

    body = Endless(b"token=hkp_x&login_csrf=", big)  # chunked: no Content-Length at all
    r = await api.post(path, content=body, headers=FORM)
    assert r.status_code == 413 and "Too large" in r.text
    assert "content-length" not in r.request.headers
    assert body.read <= LOGIN_FORM.max_bytes + body.chunk  # stopped at the cap
    print(f"{path}: 100 MB chunked: 413 after reading {body.read} bytes")


@pytest.mark.parametrize("path", ["/login", "/portal/login"])
async def test_a_login_form_with_too_many_fields_or_a_file_is_refused(
    api: httpx.AsyncClient, path: str
) -> None:
    r = await api.post(path, content=urlencode({f"f{i}": "x" for i in range(50)}), headers=FORM)
    assert r.status_code == 400 and "Too many fields" in r.text and "Not understood" in r.text
    r = await api.post(path, data={"email": "a@b.test"}, files={"password": ("p.txt", b"x")})
    assert r.status_code == 400 and "Too many files" in r.text
    r = await api.post(path, data={"email": "a@b.test", "password": "x" * 14 * 1024})
    assert r.status_code == 400 and "Field exceeded maximum size" in r.text


async def test_the_largest_endpoint_form_still_goes_through_and_larger_is_refused(
    api: httpx.AsyncClient, pool: Pool, tenant: TenantKey
) -> None:
    """The endpoint form at every limit it accepts, sent as a browser encodes it."""
    csrf = await sign_in(api, pool, tenant)
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c1", "name": "C"})
    types = [f"t{i:03d}" + ":" * 196 for i in range(500)]  # 200 characters, ':' as %3A
    description = "\N{DUCK}" * 1000  # 1,000 characters of 4 UTF-8 bytes each
    fields: dict[str, str | list[str]] = {
        "csrf": csrf,
        "subscriber": "c1",
        "url": "http://127.0.0.1:9/" + "a/" * 1014,  # 2,047 characters
        "description": description,
        "event_types": types,
        "ordering": "strict",
        "on_exhausted": "dead_letter",
        "payload": "thin",
        "format": "standard",
        "timeout": "29.99",
        "rate_limit": "100000",
        "max_in_flight": "1000",
        "signature": "ed25519",
    }
    size = len(urlencode(fields, doseq=True))
    print(f"the largest endpoint form: {size:,} bytes, cap {PAGE_FORM.max_bytes:,}")
    assert 300_000 < size <= PAGE_FORM.max_bytes
    r = await api.post("/endpoints", data=fields)
    assert r.status_code == 303, r.text[:2000]
    made = (await api.get(f"/v1{r.headers['location']}", headers=tenant.headers)).json()
    assert made["event_types"] == types and made["description"] == description

    fields["description"] = description + "x" * (PAGE_FORM.max_bytes - size + 1)  # 1 byte over
    r = await api.post("/endpoints", data=fields)
    assert r.status_code == 413 and "384 KiB" in r.text
    body = Endless(f"csrf={csrf}&url=".encode(), 100 * 1024 * 1024)
    r = await api.post("/endpoints", content=body, headers=FORM)
    assert r.status_code == 413 and body.read <= PAGE_FORM.max_bytes + body.chunk
    many = urlencode({f"f{i}": "" for i in range(PAGE_FORM.max_fields + 1)})
    r = await api.post("/endpoints", content=many, headers=FORM)
    assert r.status_code == 400 and "Too many fields" in r.text


async def test_passwords_are_checked_only_with_cores_nothing_else_wants() -> None:
    """argon2 takes ~140 ms of CPU over four threads: its threads run as SCHED_IDLE, so a
    burst of logins cannot take the cores from ingest and delivery (the benchmark's
    latency row with 20 logins/s: p99 56 ms at normal priority, 22 ms so)."""
    checks = PasswordChecks(at_once=2)

    def policy() -> int:
        return os.sched_getscheduler(threading.get_native_id())

    assert not await checks.verify(_DUMMY_HASH, "wrong")
    # the thread that just checked it (the pool's only one yet)
    found = await asyncio.get_running_loop().run_in_executor(checks._threads, policy)
    assert found == os.SCHED_IDLE
