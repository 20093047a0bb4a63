"""The delivery client: refused targets never see a connection; allowed ones are reached.

A canary HTTP server on 127.0.0.1 counts every connection it accepts, so "refused" means
nothing reached it, not merely that the client raised.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from delivery.transport import GuardRefused, create_http_client
from hookline.settings import load_settings
from hookline.targets import TargetRefused


@dataclass
class Canary:
    """A one-request-per-connection HTTP server; ``/redirect`` answers 302 to ``/landing``."""

    port: int = 0
    connections: int = 0
    paths: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *header_lines = head.split("\r\n")
            path = request_line.split(" ")[1]
            self.paths.append(path)
            headers = dict(line.lower().split(": ", 1) for line in header_lines if line)
            await reader.readexactly(int(headers.get("content-length", "0")))
            if path == "/redirect":
                status, extra = "302 Found", "Location: /landing\r\n"
            else:
                status, extra = "200 OK", ""
            writer.write(
                f"HTTP/1.1 {status}\r\n{extra}Content-Length: 2\r\n"
                "Connection: close\r\n\r\nok".encode()
            )
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    canary = Canary()
    server = await asyncio.start_server(canary.handle, "127.0.0.1", 0)
    canary.port = server.sockets[0].getsockname()[1]
    async with server:
        yield canary


def client_allowing(networks: str) -> httpx.AsyncClient:
    return create_http_client(load_settings(env={"HOOKLINE_ALLOWED_TARGET_NETWORKS": networks}))


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]", "0x7f000001", "127.1"],
)
@pytest.mark.parametrize("allowed", ["", "10.0.0.0/8"])
async def test_refused_targets_never_connect(canary: Canary, host: str, allowed: str) -> None:
    async with client_allowing(allowed) as client:
        with pytest.raises(GuardRefused) as refused:
            await client.post(f"http://{host}:{canary.port}/", content=b"{}")
    assert isinstance(refused.value, TargetRefused)
    assert isinstance(refused.value, httpx.ConnectError)
    assert isinstance(refused.value.__cause__, TargetRefused)
    assert "a loopback address (127.0.0.0/8)" in str(refused.value)
    assert refused.value.request.url.port == canary.port
    assert canary.connections == 0


async def test_allowlisted_loopback_is_reached(canary: Canary) -> None:
    async with client_allowing("127.0.0.0/8") as client:
        response = await client.post(f"http://127.0.0.1:{canary.port}/hook", content=b"{}")
    assert (response.status_code, response.content) == (200, b"ok")
    assert (canary.connections, canary.paths) == (1, ["/hook"])


@pytest.mark.parametrize("host", ["localhost", "[::ffff:127.0.0.1]"])
async def test_allowlisted_names_and_wrapped_literals_are_reached(
    canary: Canary, host: str
) -> None:
    async with client_allowing("127.0.0.0/8,::1/128") as client:
        response = await client.post(f"http://{host}:{canary.port}/", content=b"{}")
    assert response.status_code == 200
    assert canary.connections == 1


async def test_redirects_are_not_followed(canary: Canary) -> None:
    async with client_allowing("127.0.0.0/8") as client:
        response = await client.post(f"http://127.0.0.1:{canary.port}/redirect", content=b"{}")
    assert response.status_code == 302
    assert response.headers["location"] == "/landing"
    assert canary.paths == ["/redirect"]


async def test_proxy_variables_are_ignored(canary: Canary, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = f"http://127.0.0.1:{canary.port}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with client_allowing("") as client:
        with pytest.raises(GuardRefused, match="TEST-NET-3"):
            await client.post("http://203.0.113.9/", content=b"{}")
    assert canary.connections == 0


async def test_closing_leaves_no_unclosed_session(canary: Canary) -> None:
    gc.collect()  # earlier tests' garbage warns when collected: not this client's doing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = client_allowing("127.0.0.0/8")
        await client.get(f"http://127.0.0.1:{canary.port}/")
        await client.aclose()
        del client
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.mark.parametrize(
    "url", ["ws://127.0.0.1:{port}/", "http://user:pw@127.0.0.1:{port}/", "wss://127.0.0.1:{port}/"]
)
async def test_only_plain_http_urls_are_sent_even_to_allowed_addresses(
    canary: Canary, url: str
) -> None:
    async with client_allowing("127.0.0.0/8") as client:
        with pytest.raises(GuardRefused, match="only http"):
            await client.post(url.format(port=canary.port), content=b"{}")
    assert canary.connections == 0
