"""Browser tests: Debian's Chromium driven by Playwright against a live hookline.

Each test gets what a person at a browser would have: a hookline server listening on
127.0.0.1 (uvicorn in the test's event loop, over the test's own database), a delivery
worker, a webhook receiver, an operator login, and a Chromium page. ``HOOKLINE_PUBLIC_URL``
is the live server's address, so the portal links the API hands out open in the browser.

Chromium is the distribution's (``/usr/bin/chromium``, installed by ``.ci/run``); Playwright
talks to it through its bundled driver and never downloads a browser. Without Chromium the
tests are skipped on a developer's machine and fail in CI (``CI=true``).

Screenshots go to ``test-artifacts/screenshots/`` (ignored by git) for people to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiohttp import web
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    Playwright,
    Response,
    ViewportSize,
    async_playwright,
    expect,
)
from redis.asyncio import Redis

from composition.web import build_app
from hookline.db import Pool, open_pool
from hookline.settings import Settings
from hookline.tenants import create_user
from tests.conftest import Backing, TenantKey, make_settings
from tests.receiver import Received, Receiver, wait_for

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
# headless Debian Chromium, as root in CI (hence --no-sandbox), offline
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
EMAIL, PASSWORD = "ops@acme.test", "correct horse battery"
# how long expect() waits for what a person would see (htmx polls every 1-2 s)
expect.set_options(timeout=10_000)


# -- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the browser tests, but {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
async def browser(chromium: Path, playwright: Playwright) -> AsyncIterator[Browser]:
    launched = await playwright.chromium.launch(
        executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
    )
    yield launched
    await launched.close()


@dataclass
class Watch:
    """What went wrong in the page without failing a step: script errors, console errors
    (a Content-Security-Policy refusal shows up there), assets that did not load, live
    updates the server failed, and dialogs a script opened."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    _dismissing: set[asyncio.Task[None]] = field(default_factory=set)

    def attach(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"script error: {exc}"))
        page.on("console", self._console)
        page.on("response", self._response)
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        # a page answered 4xx on purpose (a form error, a 404) logs "Failed to load
        # resource" too; what failed to load is judged by _response instead
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(f"console: {message.text} ({message.location.get('url')})")

    def _response(self, response: Response) -> None:
        kind = response.request.resource_type
        if response.url.endswith("/favicon.ico"):
            return  # the browser asks for it on its own; none is fine
        if (kind in _ASSETS and response.status >= 400) or response.status >= 500:
            self.errors.append(f"{kind} {response.url} answered {response.status}")

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        task = asyncio.get_running_loop().create_task(dialog.dismiss())
        self._dismissing.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._dismissing.discard)


_ASSETS = {"stylesheet", "script", "image", "font", "media"}


class Site:
    """Browser contexts on the live server, each watched; all closed at the end."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.watch = Watch()
        self._contexts: list[BrowserContext] = []

    async def page(self, viewport: ViewportSize | None = None, **options: Any) -> Page:
        """A page in a fresh context (its own cookies): desktop size unless told."""
        context = await self.browser.new_context(
            base_url=self.base_url,
            viewport=viewport or DESKTOP,
            locale="en-GB",
            timezone_id="UTC",
            **options,
        )
        self._contexts.append(context)
        page = await context.new_page()
        self.watch.attach(page)
        return page

    async def phone(self, signed_in: Page) -> Page:
        """A phone-sized page with the same session as ``signed_in``."""
        state = await signed_in.context.storage_state()
        return await self.page(PHONE, storage_state=state, is_mobile=True, has_touch=True)

    async def close(self) -> None:
        for context in self._contexts:
            await context.close()


@pytest.fixture
async def site(browser: Browser, live: str) -> AsyncIterator[Site]:
    opened = Site(browser, live)
    yield opened
    await opened.close()
    assert not opened.watch.dialogs, f"a script opened a dialog: {opened.watch.dialogs}"
    assert not opened.watch.errors, "the pages reported errors:\n" + "\n".join(opened.watch.errors)


@pytest.fixture
async def page(site: Site) -> Page:
    """A desktop-sized page, signed out."""
    return await site.page()


async def shoot(page: Page, name: str) -> Path:
    """A full-page screenshot for people to look at (test-artifacts/screenshots/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # from the top: a full-page shot of a scrolled page paints the sticky top bar mid-page
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


async def no_sideways_scroll(page: Page) -> None:
    """The page fits its width: only wide tables scroll, inside their own frame."""
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{page.url} is {overflow}px wider than the screen"


async def tables_fit(page: Page) -> None:
    """Every table shows all its columns without scrolling sideways in its frame."""
    hidden = await page.evaluate(
        """[...document.querySelectorAll('.table-wrap')]
             .map(w => w.scrollWidth - w.clientWidth).filter(d => d > 1)"""
    )
    assert not hidden, f"{page.url}: tables need {hidden}px more to show every column"


async def mark(page: Page) -> None:
    """Mark the loaded document; :func:`not_reloaded` fails if it was replaced since."""
    await page.evaluate("window.__hooklineTestMark = true")


async def not_reloaded(page: Page) -> None:
    assert await page.evaluate("window.__hooklineTestMark === true"), "the page was reloaded"


# -- the live server -----------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """The live server's socket, bound before the settings so they know its address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield sock
    sock.close()


@pytest.fixture
def settings(database_url: str, backing: Backing, listener: socket.socket) -> Settings:
    port = listener.getsockname()[1]
    return make_settings(database_url, backing.redis_url, public_url=f"http://127.0.0.1:{port}")


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    # the server, the worker and the test's API calls share it
    async with open_pool(settings, size=10) as opened:
        yield opened


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # leave Ctrl-C to pytest


@pytest.fixture
async def live(
    settings: Settings, pool: Pool, redis: Redis, listener: socket.socket
) -> AsyncIterator[str]:
    """hookline (API and dashboard) listening at ``settings.public_url``."""
    config = uvicorn.Config(
        build_app(settings, pool, redis),
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    await wait_for(lambda: server.started or task.done(), what="the live server")
    assert server.started, "the live server did not start"
    yield settings.public_url
    server.should_exit = True
    await task


# -- the people and the data ---------------------------------------------------------------


def _answer(got: Received) -> web.Response:
    """What a typical receiver says: 200 with a small JSON body and a header of its own."""
    return web.json_response({"received": True}, headers={"x-request-handled-by": "shop-api"})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver(respond=_answer)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def broken_receiver() -> AsyncIterator[Receiver]:
    """A receiver that fails every request (500), for dead letters and red rows."""
    server = Receiver(respond=lambda got: web.json_response({"error": "database down"}, status=500))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def operator(pool: Pool, tenant: TenantKey) -> str:
    return await create_user(pool, tenant.id, EMAIL, PASSWORD)


async def sign_in(page: Page, email: str = EMAIL, password: str = PASSWORD) -> None:
    """Through the login form, as a person would."""
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("navigation", name="Main")).to_be_visible()


class Seed:
    """Data made through the API, as the producer's backend would."""

    def __init__(self, client: httpx.AsyncClient, tenant: TenantKey) -> None:
        self.client = client
        self.headers = tenant.headers

    async def post(
        self, path: str, body: dict[str, Any] | None = None, status: int = 201
    ) -> dict[str, Any]:
        r = await self.client.post(path, headers=self.headers, json=body)
        assert r.status_code == status, r.text
        answer: dict[str, Any] = r.json()
        return answer

    async def get(self, path: str) -> dict[str, Any]:
        r = await self.client.get(path, headers=self.headers)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.client.patch(path, headers=self.headers, json=body)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    async def event_type(self, name: str, description: str, **fields: Any) -> dict[str, Any]:
        return await self.post(
            "/v1/event-types", {"name": name, "description": description, **fields}
        )

    async def subscriber(self, uid: str, name: str) -> dict[str, Any]:
        return await self.post("/v1/subscribers", {"uid": uid, "name": name})

    async def endpoint(self, uid: str, url: str, **fields: Any) -> dict[str, Any]:
        return await self.post("/v1/endpoints", {"subscriber": uid, "url": url, **fields})

    async def event(self, type_: str, data: dict[str, Any], **fields: Any) -> dict[str, Any]:
        return await self.post("/v1/events", {"type": type_, "data": data, **fields}, 202)

    async def portal_link(self, uid: str) -> str:
        link: str = (await self.post(f"/v1/subscribers/{uid}/portal-link"))["url"]
        return link

    async def deliveries(self, **query: str) -> list[dict[str, Any]]:
        r = await self.client.get("/v1/deliveries", headers=self.headers, params=query)
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["data"]
        return found


@pytest.fixture
async def seed(live: str, tenant: TenantKey) -> AsyncIterator[Seed]:
    """The API of the live server, with the tenant's key."""
    async with httpx.AsyncClient(base_url=live, timeout=10) as client:
        yield Seed(client, tenant)
