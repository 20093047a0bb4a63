"""The SSRF policy: which endpoint URLs and addresses hookline refuses, and why.

Everything here runs without a network: numeric hosts and ``localhost`` resolve locally,
and public names are exercised through :func:`check_address` directly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from hookline.targets import (
    IPNetwork,
    TargetRefused,
    check_address,
    check_target,
    check_url,
    resolve_checked,
)

NOTHING: tuple[IPNetwork, ...] = ()
LOOPBACK_V4 = (ipaddress.ip_network("127.0.0.0/8"),)

# (url, a fragment the refusal message must contain)
HOSTILE = [
    # loopback, in every spelling getaddrinfo or IPv6 accepts
    ("http://127.0.0.1/", "loopback"),
    ("http://127.0.0.1:8080/path?q=1", "loopback"),
    ("http://127.255.255.254/", "loopback"),
    ("http://127.1/", "127.1 resolves to a loopback"),
    ("http://2130706433/", "2130706433 resolves to a loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://0x7f.0.0.1/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://[::1]/", "::1 is a loopback"),
    ("http://[0:0:0:0:0:0:0:1]/", "loopback"),
    ("http://localhost/", "localhost resolves to a loopback"),
    ("http://LOCALHOST:8000/", "loopback"),
    ("http://localhost./", "localhost."),
    ("http://①②⑦.⓪.⓪.①/", "loopback"),
    # IPv4 wrapped in IPv6
    ("http://[::ffff:127.0.0.1]/", "embeds 127.0.0.1"),
    ("http://[::ffff:7f00:1]/", "embeds 127.0.0.1"),
    ("http://[::127.0.0.1]/", "embeds 127.0.0.1"),  # IPv4-compatible
    ("http://[64:ff9b::7f00:1]/", "embeds 127.0.0.1"),  # NAT64
    ("http://[64:ff9b::10.0.0.1]/", "embeds 10.0.0.1"),
    ("http://[64:ff9b:1::7f00:1]/", "local-use NAT64"),
    ("http://[2002:7f00:1::1]/", "embeds 127.0.0.1"),  # 6to4
    ("http://[2002:a9fe:a9fe::1]/", "embeds 169.254.169.254"),
    ("http://[2001:0:4136:e378:8000:ffff:80ff:fffe]/", "embeds 127.0.0.1"),  # Teredo
    ("http://[::ffff:0:7f00:1]/", "embeds 127.0.0.1"),  # SIIT
    ("http://[2606:4700::5efe:7f00:1]/", "embeds 127.0.0.1"),  # ISATAP
    ("http://[2606:4700::200:5efe:a00:1]/", "embeds 10.0.0.1"),  # ISATAP, u/l bit set
    # unspecified
    ("http://0.0.0.0/", "'this network'"),
    ("http://0/", "'this network'"),
    ("http://[::]/", "unspecified"),
    # cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::ffff:169.254.169.254]/", "embeds 169.254.169.254"),
    ("http://[fd00:ec2::254]/", "unique-local"),
    ("http://100.100.100.200/", "CGNAT"),
    # private, shared, special
    ("http://10.0.0.5/", "10.0.0.5 is a private address (10.0.0.0/8)"),
    ("http://172.16.0.1/", "private"),
    ("http://172.31.255.254/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://192.0.0.9/", "IETF protocol assignment"),
    ("http://192.0.2.1/", "TEST-NET-1"),
    ("http://198.51.100.7/", "TEST-NET-2"),
    ("http://203.0.113.9/", "TEST-NET-3"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://224.0.0.1/", "multicast"),
    ("http://239.255.255.250/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://[fc00::1]/", "unique-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fec0::1]/", "site-local"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[100::1]/", "discard-only"),
    ("http://[2001:db8::1]/", "documentation"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "embeds 192.0.2.45"),
    # schemes other than http(s)
    ("file:///etc/passwd", "scheme 'file'"),
    ("gopher://127.0.0.1:70/_GET", "scheme 'gopher'"),
    ("ftp://example.com/", "scheme 'ftp'"),
    ("dict://127.0.0.1:11211/", "scheme 'dict'"),
    ("//example.com/", "scheme '(none)'"),
    # userinfo, which parsers disagree about
    ("http://user@127.0.0.1/", "user:password@"),
    ("http://public.example@127.0.0.1/", "user:password@"),
    ("http://user:pass@example.com/", "user:password@"),
    ("http://127.0.0.1\\@example.com/", "user:password@"),
    # malformed
    ("http://%31%32%37.0.0.1/", "not a valid host name"),
    ("http://a..b/", "not a valid host name"),
    ("http:///path", "no host"),
    ("http://example.com:0/", "port"),
    ("http://example.com:65536/", "port"),
    ("http://example.com:http/", "port"),
    ("http://exa mple.com/", "whitespace"),
    ("http://example.com/\r\nX-Injected: 1", "control"),
    ("http://[fe80::1%25eth0]/", "zone"),
    ("http://example.com/" + "a" * 2048, "longer than 2048"),
]


@pytest.mark.parametrize(("url", "why"), HOSTILE)
async def test_hostile_targets_are_refused(url: str, why: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        await check_target(url, NOTHING)
    assert why in str(refused.value)


def test_refusal_says_how_to_allow() -> None:
    with pytest.raises(TargetRefused) as refused:
        check_address("10.0.0.5", NOTHING)
    assert str(refused.value) == (
        "refused: 10.0.0.5 is a private address (10.0.0.0/8); "
        "add the network to HOOKLINE_ALLOWED_TARGET_NETWORKS to allow it"
    )


@pytest.mark.parametrize(
    "ip",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "2a00:1450:4001:82a::200e",
        "::ffff:93.184.216.34",  # mapped, judged by what it carries
        "64:ff9b::5db8:d822",  # NAT64 from DNS64, as on IPv6-only hosts
        "2002:5db8:d822::1",  # 6to4
        "2001:0:4136:e378:8000:ffff:a247:27dd",  # Teredo client 93.184.216.34
    ],
)
def test_public_addresses_are_accepted(ip: str) -> None:
    check_address(ip, NOTHING)
    check_address(ipaddress.ip_address(ip), NOTHING)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/", ["127.0.0.1"]),
        ("http://127.1/", ["127.0.0.1"]),
        ("http://2130706433/", ["127.0.0.1"]),
        ("http://[::ffff:127.0.0.1]/", ["::ffff:127.0.0.1"]),
        ("http://[64:ff9b::7f00:1]/", ["64:ff9b::7f00:1"]),
    ],
)
async def test_allowlisted_loopback_is_accepted(url: str, expected: list[str]) -> None:
    assert await check_target(url, LOOPBACK_V4) == expected


async def test_allowlisted_localhost_is_accepted() -> None:
    # Some machines also map localhost to ::1; every answer must be allowed.
    both = (*LOOPBACK_V4, ipaddress.ip_network("::1/128"))
    assert "127.0.0.1" in await check_target("http://localhost/", both)


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("10.1.2.3", "10.0.0.0/8"),
        ("fd00:ec2::254", "fd00::/8"),
        ("::ffff:10.1.2.3", "::ffff:0:0/96"),  # the raw form may be allowed too
        ("169.254.169.254", "169.254.169.254/32"),
    ],
)
def test_allowlist_admits_exactly_its_networks(ip: str, allowed: str) -> None:
    check_address(ip, (ipaddress.ip_network(allowed),))


def test_allowlist_does_not_leak_to_other_networks() -> None:
    with pytest.raises(TargetRefused, match=r"169\.254\.169\.254 is a link-local"):
        check_address("169.254.169.254", LOOPBACK_V4)
    with pytest.raises(TargetRefused, match="::1 is a loopback"):
        check_address("::1", LOOPBACK_V4)


def test_not_an_address_is_refused() -> None:
    with pytest.raises(TargetRefused, match="not an IP address"):
        check_address("example.com", NOTHING)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Example.COM/path#frag", ("https", "example.com", 443)),
        ("http://example.com", ("http", "example.com", 80)),
        ("HTTP://example.com:8080/x?y=1", ("http", "example.com", 8080)),
        ("https://example.com:65535/", ("https", "example.com", 65535)),
        ("https://bücher.example/", ("https", "xn--bcher-kva.example", 443)),
        ("http://①②⑦.⓪.⓪.①/", ("http", "127.0.0.1", 80)),
        ("http://[::ffff:127.0.0.1]:81/", ("http", "::ffff:7f00:1", 81)),
        ("http://hooks.example./", ("http", "hooks.example.", 80)),
    ],
)
def test_check_url_returns_normalised_parts(url: str, expected: tuple[str, str, int]) -> None:
    assert check_url(url) == expected


async def test_resolves_once_and_one_bad_answer_refuses_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    calls: list[str] = []

    async def fake_getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        calls.append(host)
        assert kwargs["type"] == socket.SOCK_STREAM
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(TargetRefused, match=r"rebind\.example resolves to a loopback"):
        await resolve_checked("rebind.example", 443, NOTHING)
    assert calls == ["rebind.example"]
    assert await resolve_checked("rebind.example", 443, LOOPBACK_V4) == [
        "93.184.216.34",
        "127.0.0.1",
    ]


async def test_unresolvable_host_is_refused() -> None:
    with pytest.raises(TargetRefused, match=r"^could not resolve a\.\.b$"):
        await resolve_checked("a..b", 80, NOTHING)


async def test_a_refused_name_is_told_by_the_rule_not_by_the_address_it_resolved_to() -> None:
    with pytest.raises(TargetRefused) as refused:
        await check_target("http://localhost/", [])
    message = str(refused.value)
    assert "localhost resolves to a loopback address" in message
    assert "127.0.0.1" not in message and "::1 " not in message
