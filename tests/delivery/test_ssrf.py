"""The SSRF guard end to end: hostile endpoint URLs are refused at registration and again
at delivery, and not one connection reaches a canary listening on every local address.

The canary listens on the wildcard address (dual-stack where IPv6 exists), so a connection
to 127.0.0.2, 0.0.0.0, ``::``, ``::1`` or one of the machine's own interface addresses
lands on it just as one to 127.0.0.1 does. Targets that can reach this machine carry the
canary's port; the rest (10/8, metadata addresses, NAT64 prefixes) could not be observed
by any local listener, so for them the recorded refusal is the proof: a real connection
attempt would end as a connect error or a timeout, never as the policy's message.

Who refuses what. At registration, every target is refused by
``hookline.targets.check_target``: ``check_url`` (scheme, userinfo, syntax, IDNA) and then
``resolve_checked`` (every address the host resolves to). At delivery the worker hands the
request straight to ``delivery.transport``'s transport, and the first of these refuses:

- httpx's URL parser, in ``delivery.attempt.send``: a dotted quad with a leading zero
  (``0177.0.0.1``) and the circled-digit IDNA host (IDNA 2008 refuses those characters),
  before any socket exists: the error begins ``InvalidURL``;
- the first check of ``_GuardedTransport``: any scheme but http(s), and any userinfo
  (``gopher://``, ``file:///``, ``ws://``, ``http://user@...``), whatever the host;
- its literal check: any other IP literal;
- ``GuardedResolver``, which aiohttp asks about every other host: names (``localhost``,
  a name that does not resolve) and the numeric spellings aiohttp does not take for
  literals (``127.1``, ``2130706433``, ``0x7f000001``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from composition.web import build_app
from hookline.db import Pool
from hookline.settings import Settings
from tests.conftest import TenantKey, running_worker
from tests.receiver import Receiver, wait_for

_LOOPBACK = "is a loopback address (127.0.0.0/8)"
_RESOLVES_LOOPBACK = "resolves to a loopback address (127.0.0.0/8)"
_LOOPBACK6 = "is a loopback address (::1/128)"
_EMBEDS_LOOPBACK = "embeds 127.0.0.1, a loopback address"
_THIS_NETWORK = "is a 'this network' address"
_USERINFO = "user:password@ in the URL is not allowed"
# how the layers below the guard word their refusals at delivery
_HTTPX_BAD_IPV4 = ("InvalidURL: Invalid IPv4 address",)
_HTTPX_BAD_IDNA = ("InvalidURL: Invalid IDNA hostname",)
_NOT_PLAIN_HTTP = ("refused: only http(s) URLs without user info",)


@dataclass(frozen=True)
class Hostile:
    """A URL a tenant must not be able to send to, and how each check words its refusal."""

    url: str  # "{port}" stands for the canary's port
    # The policy's refusal begins with one of these, after "refused: ". Alternatives are
    # for names whose answer depends on the machine (localhost may also be ::1).
    reasons: tuple[str, ...]
    # How the attempt's error begins when a layer other than the guard refuses at
    # delivery (see the module docstring); empty: "refused: " and one of ``reasons``.
    at_delivery: tuple[str, ...] = ()

    def on(self, port: int) -> str:
        return self.url.replace("{port}", str(port))

    def refused_at_registration(self, message: str) -> bool:
        return any(reason in message for reason in self.reasons)

    def refused_at_delivery(self, error: str | None) -> bool:
        expected = self.at_delivery or tuple(f"refused: {reason}" for reason in self.reasons)
        return error is not None and error.startswith(expected)


def _h(url: str, *reasons: str, at_delivery: tuple[str, ...] = ()) -> Hostile:
    return Hostile(url, reasons, at_delivery)


def _guard_says(*reasons: str) -> tuple[str, ...]:
    return tuple(f"refused: {reason}" for reason in reasons)


def _unresolved_or(name: str, *resolved: str) -> tuple[str, ...]:
    # does not resolve here (no DNS); where it does, it must land in a refused network
    return (f"could not resolve {name}", *(f"{name} resolves to {r}" for r in resolved))


HOSTILE = [
    # loopback, in every spelling getaddrinfo, IPv4 or IPv6 accept
    _h("http://127.0.0.1:{port}/", f"127.0.0.1 {_LOOPBACK}"),
    _h("http://127.0.0.2:{port}/", f"127.0.0.2 {_LOOPBACK}"),
    _h("http://127.255.255.254:{port}/", f"127.255.255.254 {_LOOPBACK}"),
    _h("http://127.1:{port}/", f"127.1 {_RESOLVES_LOOPBACK}"),
    _h("http://2130706433:{port}/", f"2130706433 {_RESOLVES_LOOPBACK}"),
    _h("http://0x7f000001:{port}/", f"0x7f000001 {_RESOLVES_LOOPBACK}"),
    _h("http://0x7f.0.0.1:{port}/", f"0x7f.0.0.1 {_RESOLVES_LOOPBACK}"),
    _h("http://017700000001:{port}/", f"017700000001 {_RESOLVES_LOOPBACK}"),
    _h(
        "http://0177.0.0.1:{port}/",
        f"0177.0.0.1 {_RESOLVES_LOOPBACK}",
        at_delivery=_HTTPX_BAD_IPV4,
    ),
    _h("http://127.0.0.1.:{port}/", *_unresolved_or("127.0.0.1.", "a loopback")),
    _h("http://①②⑦.⓪.⓪.①:{port}/", f"127.0.0.1 {_LOOPBACK}", at_delivery=_HTTPX_BAD_IDNA),
    _h("http://[::1]:{port}/", f"::1 {_LOOPBACK6}"),
    _h("http://[0:0:0:0:0:0:0:1]:{port}/", f"::1 {_LOOPBACK6}"),
    _h(
        "http://[::1%25lo]:{port}/",
        "'::1%25lo' has an IPv6 zone",
        at_delivery=_guard_says(f"::1%25lo {_LOOPBACK6}"),
    ),
    # IPv4 loopback inside IPv6: mapped, compatible, NAT64, 6to4, Teredo, ISATAP, SIIT
    _h("http://[::ffff:127.0.0.1]:{port}/", f"::ffff:7f00:1 {_EMBEDS_LOOPBACK}"),
    _h("http://[::ffff:7f00:1]:{port}/", f"::ffff:7f00:1 {_EMBEDS_LOOPBACK}"),
    _h("http://[::127.0.0.1]:{port}/", f"::7f00:1 {_EMBEDS_LOOPBACK}"),
    _h("http://[64:ff9b::7f00:1]:{port}/", f"64:ff9b::7f00:1 {_EMBEDS_LOOPBACK}"),
    _h("http://[64:ff9b:1::7f00:1]:{port}/", "64:ff9b:1::7f00:1 is a local-use NAT64 address"),
    _h("http://[2002:7f00:1::1]:{port}/", f"2002:7f00:1::1 {_EMBEDS_LOOPBACK}"),
    _h(
        "http://[2001:0:4136:e378:8000:ffff:80ff:fffe]:{port}/",
        f"2001:0:4136:e378:8000:ffff:80ff:fffe {_EMBEDS_LOOPBACK}",
    ),
    _h("http://[2606:4700::5efe:7f00:1]:{port}/", f"2606:4700::5efe:7f00:1 {_EMBEDS_LOOPBACK}"),
    _h(
        "http://[2606:4700::200:5efe:7f00:1]:{port}/",
        f"2606:4700::200:5efe:7f00:1 {_EMBEDS_LOOPBACK}",
    ),
    _h("http://[::ffff:0:7f00:1]:{port}/", f"::ffff:0:7f00:1 {_EMBEDS_LOOPBACK}"),
    # "this host": Linux connects 0.0.0.0 and :: to the machine itself
    _h("http://0.0.0.0:{port}/", f"0.0.0.0 {_THIS_NETWORK}"),
    _h("http://0:{port}/", f"0 resolves to {_THIS_NETWORK[3:]}"),
    _h("http://[::]:{port}/", ":: is the unspecified address"),
    _h("http://[::ffff:0.0.0.0]:{port}/", "::ffff:0:0 embeds 0.0.0.0, a 'this network'"),
    # link-local and cloud metadata
    _h("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    _h("http://169.254.170.2/v2/credentials", "169.254.170.2 is a link-local address"),
    _h("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe embeds 169.254.169.254, a link"),
    _h("http://[2002:a9fe:a9fe::1]/", "2002:a9fe:a9fe::1 embeds 169.254.169.254, a link"),
    _h("http://[fd00:ec2::254]/latest/meta-data/", "fd00:ec2::254 is a unique-local private"),
    _h("http://100.100.100.200/latest/meta-data/", "100.100.100.200 is a CGNAT shared address"),
    _h(
        "http://metadata.google.internal/computeMetadata/v1/",
        *_unresolved_or("metadata.google.internal", "a link-local"),
    ),
    _h("http://[fe80::1]/", "fe80::1 is a link-local address"),
    # private and shared ranges
    _h("http://10.0.0.1/", "10.0.0.1 is a private address (10.0.0.0/8)"),
    _h("http://0xa000001/", "0xa000001 resolves to a private address (10.0.0.0/8)"),
    _h("http://172.16.0.1/", "172.16.0.1 is a private address (172.16.0.0/12)"),
    _h("http://172.31.255.254/", "172.31.255.254 is a private address (172.16.0.0/12)"),
    _h("http://192.168.0.1/", "192.168.0.1 is a private address (192.168.0.0/16)"),
    _h("http://100.64.0.1/", "100.64.0.1 is a CGNAT shared address (100.64.0.0/10)"),
    _h("http://100.127.255.254/", "100.127.255.254 is a CGNAT shared address"),
    _h("http://[fc00::1]/", "fc00::1 is a unique-local private address"),
    _h("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1 embeds 10.0.0.1, a private address"),
    # names that resolve to loopback (see _names_of_this_machine for more) or to nothing
    _h(
        "http://localhost:{port}/",
        f"localhost {_RESOLVES_LOOPBACK}",
        f"localhost resolves to {_LOOPBACK6[3:]}",
    ),
    _h(
        "http://LOCALHOST:{port}/",
        f"localhost {_RESOLVES_LOOPBACK}",
        f"localhost resolves to {_LOOPBACK6[3:]}",
    ),
    _h("http://localhost.:{port}/", *_unresolved_or("localhost.", "a loopback")),
    # schemes other than http(s) and userinfo: the transport refuses them first at delivery
    _h("file:///etc/passwd", "scheme 'file' is not http", at_delivery=_NOT_PLAIN_HTTP),
    _h(
        "gopher://127.0.0.1:{port}/_GET%20/",
        "scheme 'gopher' is not http",
        at_delivery=_NOT_PLAIN_HTTP,
    ),
    _h("gopher://localhost:{port}/_x", "scheme 'gopher' is not", at_delivery=_NOT_PLAIN_HTTP),
    _h(
        "ftp://127.0.0.1:{port}/",
        "scheme 'ftp' is not http",
        at_delivery=_NOT_PLAIN_HTTP,
    ),
    _h(
        "dict://127.0.0.1:{port}/stats",
        "scheme 'dict' is not http",
        at_delivery=_NOT_PLAIN_HTTP,
    ),
    _h(
        "ws://127.0.0.1:{port}/",
        "scheme 'ws' is not http",
        at_delivery=_NOT_PLAIN_HTTP,
    ),
    # userinfo and parser confusion: every parser in the chain must agree on the host
    _h(
        "http://user@127.0.0.1:{port}/",
        _USERINFO,
        at_delivery=_NOT_PLAIN_HTTP,
    ),
    _h(
        "http://public.example@127.0.0.1:{port}/",
        _USERINFO,
        at_delivery=_NOT_PLAIN_HTTP,
    ),
    _h(
        "http://public.example\\@127.0.0.1:{port}/",
        _USERINFO,
        at_delivery=_NOT_PLAIN_HTTP,
    ),
    _h(
        "http://user:pass@localhost:{port}/",
        _USERINFO,
        at_delivery=_NOT_PLAIN_HTTP,
    ),
    # "@public.example" is the fragment or query here, not the host, for every parser
    _h("http://127.0.0.1:{port}#@public.example/", f"127.0.0.1 {_LOOPBACK}"),
    _h("http://127.0.0.1:{port}?@public.example/", f"127.0.0.1 {_LOOPBACK}"),
]


def _names_of_this_machine() -> list[Hostile]:
    """Names that already resolve to loopback here: real DNS-style names pointing inward.

    Offline there is no public name to point at 127.0.0.1, and writing /etc/hosts would
    change the machine; the hostname (127.0.1.1 on Debian, 127.0.0.1 in many containers)
    and Debian's ip6-localhost are such names wherever they resolve only to loopback.
    """
    found = []
    for name in dict.fromkeys(
        n.lower() for n in ("ip6-localhost", "ip6-loopback", socket.gethostname())
    ):
        try:
            infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            continue
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
        if name != "localhost" and addresses and all(a.is_loopback for a in addresses):
            why = (f"{name} resolves to a loopback address",)
            found.append(Hostile(f"http://{name}:{{port}}/", why))
    return found


def test_the_list_is_long_enough() -> None:
    assert len(HOSTILE) >= 40
    assert len({h.url for h in HOSTILE}) == len(HOSTILE)


@dataclass
class Canary:
    """Accepts connections on every local address and remembers where each one went."""

    port: int = 0
    dual_stack: bool = False
    heard: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.heard.append(str(writer.get_extra_info("sockname")[0]))
        writer.close()


def _wildcard_socket() -> tuple[socket.socket, bool]:
    """A listening socket on every address: IPv6 with IPv4 mapped in, else IPv4 only."""
    with contextlib.suppress(OSError):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::", 0))
            sock.listen()
            return sock, True
        except OSError:
            sock.close()
            raise
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("0.0.0.0", 0))
    sock.listen()
    return sock, False


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    sock, dual_stack = _wildcard_socket()
    canary = Canary(port=sock.getsockname()[1], dual_stack=dual_stack)
    server = await asyncio.start_server(canary.handle, sock=sock)
    async with server:
        yield canary


async def test_the_canary_hears_every_local_address(canary: Canary) -> None:
    # without this, "the canary heard nothing" could mean it was deaf
    hosts = ["127.0.0.1", "127.0.0.2", "0.0.0.0"] + (["::1", "::"] if canary.dual_stack else [])
    for host in hosts:
        _, writer = await asyncio.open_connection(host, canary.port)
        writer.close()
    await wait_for(lambda: len(canary.heard) == len(hosts), what="the canary to hear each")


@contextlib.asynccontextmanager
async def _strict_api(
    settings: Settings, pool: Pool, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    """The API as production runs it by default: no private network allowlisted."""
    app = build_app(_strict(settings), pool, redis)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as client:
        yield client


def _strict(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_target_networks": []})


def _refusal(response: httpx.Response) -> tuple[Any, str] | None:
    if response.status_code != 422:
        return None
    error = response.json()["errors"][0]
    return error["loc"], str(error["msg"])


async def test_registration_refuses_every_hostile_target(
    api: httpx.AsyncClient,
    settings: Settings,
    pool: Pool,
    redis: Redis,
    tenant: TenantKey,
    canary: Canary,
) -> None:
    h = tenant.headers
    await api.post("/v1/subscribers", headers=h, json={"uid": "c"})
    # an endpoint to PATCH, registered while the test settings allow 127.0.0.0/8
    ok_url = f"http://127.0.0.1:{canary.port}/ok"
    r = await api.post("/v1/endpoints", headers=h, json={"subscriber": "c", "url": ok_url})
    assert r.status_code == 201, r.text
    kept = r.json()
    path = f"/v1/endpoints/{kept['id']}"
    wrong: list[tuple[str, str, int, Any]] = []
    async with _strict_api(settings, pool, redis) as strict:
        for target in HOSTILE + _names_of_this_machine():
            url = target.on(canary.port)
            created = await strict.post(
                "/v1/endpoints", headers=h, json={"subscriber": "c", "url": url}
            )
            patched = await strict.patch(path, headers=h, json={"url": url})
            for how, response in (("POST", created), ("PATCH", patched)):
                refusal = _refusal(response)
                if refusal is None or refusal[0] != ["body", "url"]:
                    wrong.append((how, url, response.status_code, response.text))
                elif not target.refused_at_registration(refusal[1]):
                    wrong.append((how, url, 422, refusal[1]))
        listed = (await strict.get("/v1/endpoints", headers=h)).json()["data"]
    assert wrong == []
    assert [e["id"] for e in listed] == [kept["id"]]  # no POST created anything
    assert (await api.get(path, headers=h)).json() == kept  # no PATCH changed anything
    assert canary.heard == []  # checking a URL resolves it but never connects


async def test_delivery_refuses_every_hostile_target_and_nothing_connects(
    api: httpx.AsyncClient,
    settings: Settings,
    pool: Pool,
    redis: Redis,
    tenant: TenantKey,
    canary: Canary,
) -> None:
    targets = HOSTILE + _names_of_this_machine()
    assert len(targets) <= 100  # one page of deliveries
    h = tenant.headers
    await api.post("/v1/subscribers", headers=h, json={"uid": "c"})
    placeholder = f"http://127.0.0.1:{canary.port}/placeholder"
    by_endpoint: dict[str, Hostile] = {}
    for target in targets:
        r = await api.post("/v1/endpoints", headers=h, json={"subscriber": "c", "url": placeholder})
        assert r.status_code == 201, r.text
        by_endpoint[r.json()["id"]] = target
    # Registration refuses these (the test above), so the hostile URLs go in by SQL, as a
    # database restore, a hand edit or an allowlist narrowed after registration would leave
    # them: the connect-time guard has to hold on its own. The placeholder is the canary, so
    # a row this missed would show up as a connection.
    await pool.executemany(
        "UPDATE endpoints SET url = $2 WHERE id = $1",
        [(endpoint, target.on(canary.port)) for endpoint, target in by_endpoint.items()],
    )
    r = await api.post("/v1/events", headers=h, json={"type": "ssrf.probe", "data": {}})
    assert r.status_code == 202 and r.json()["deliveries"] == len(targets), r.text

    async def all_attempted() -> bool:
        r = await api.get("/v1/deliveries", params={"limit": 100}, headers=h)
        rows = r.json()["data"]
        return len(rows) == len(targets) and all(d["attempts"] >= 1 for d in rows)

    # one worker for every target, with nothing allowlisted (production's default)
    async with running_worker(_strict(settings), pool, redis):
        await wait_for(all_attempted, what="an attempt at every hostile endpoint")
    listed = (await api.get("/v1/deliveries", params={"limit": 100}, headers=h)).json()["data"]
    wrong: list[tuple[str, Any, str | None]] = []
    for summary in listed:
        delivery = (await api.get(f"/v1/deliveries/{summary['id']}", headers=h)).json()
        target = by_endpoint[delivery["endpoint_id"]]
        for attempt in delivery["attempt_history"]:
            if attempt["status_code"] is not None or not target.refused_at_delivery(
                attempt["error"]
            ):
                wrong.append((target.url, attempt["status_code"], attempt["error"]))
    assert wrong == []
    assert canary.heard == []


@pytest.mark.slow
async def test_a_redirect_to_loopback_is_never_followed(
    api: httpx.AsyncClient,
    settings: Settings,
    pool: Pool,
    redis: Redis,
    tenant: TenantKey,
    receiver: Receiver,
    canary: Canary,
) -> None:
    # A public receiver is out of reach offline, so the receiver sits on the allowlisted
    # 127.0.0.1 and the redirect points at 127.0.0.2, which the allowlist admits too: only
    # never following redirects keeps the canary quiet, not the address check.
    elsewhere = f"http://127.0.0.2:{canary.port}/landing"
    receiver.respond = lambda got: web.Response(status=302, headers={"location": elsewhere})
    h = tenant.headers
    await api.post("/v1/subscribers", headers=h, json={"uid": "c"})
    r = await api.post("/v1/endpoints", headers=h, json={"subscriber": "c", "url": receiver.url})
    assert r.status_code == 201, r.text
    r = await api.post("/v1/events", headers=h, json={"type": "ssrf.probe", "data": {}})
    assert r.status_code == 202, r.text

    async def dead_lettered() -> bool:
        listed = (await api.get("/v1/deliveries", headers=h)).json()["data"]
        return bool(listed) and listed[0]["status"] == "failed"

    async with running_worker(settings, pool, redis):
        await wait_for(dead_lettered, what="the redirected delivery to fail")
    listed = (await api.get("/v1/deliveries", headers=h)).json()["data"]
    delivery = (await api.get(f"/v1/deliveries/{listed[0]['id']}", headers=h)).json()
    attempts = delivery["attempt_history"]
    assert [a["status_code"] for a in attempts] == [302] * len(attempts) == [302, 302, 302]
    assert [r.path for r in receiver.requests] == ["/hook"] * 3
    assert canary.heard == []
