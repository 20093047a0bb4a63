"""Targets: the SSRF policy deciding which URLs and addresses hookline may send to.

Endpoint URLs come from tenants, so a request to one must not reach this machine, the
private network around it or a cloud metadata service. The policy is pure (stdlib only) so
that registration (:func:`check_target`) and the delivery client's resolver
(``delivery.transport``) apply exactly the same rules.

Exceptions::

    Exception
     └── TargetRefused      the URL or one of its addresses is not allowed
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from hookline.errors import NOT_ALLOWED, UNRESOLVABLE

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
ALLOW_HINT = "add the network to HOOKLINE_ALLOWED_TARGET_NETWORKS to allow it"
# What is left of a host after IDNA: letters, digits, hyphens, underscores, dots.
# Anything else (%, \, spaces) is a parser-confusion attempt, not a real name.
_HOST_CHARS = re.compile(r"[a-z0-9_.-]+")


class TargetRefused(Exception):
    """The URL or an address it leads to is not allowed: ``reason`` says why, ``kind``
    what kind of refusal (hookline.errors: ``not_allowed`` by the installation's
    networks, ``unresolvable``, or ``invalid``), ``hint`` how the operator could allow it.
    The message is the reason and the hint together."""

    def __init__(self, reason: str, kind: str = "invalid", hint: str | None = None) -> None:
        super().__init__(reason if hint is None else f"{reason}; {hint}")
        self.reason, self.kind, self.hint = reason, kind, hint


def _table(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), why) for net, why in rows)


# Refused unless allowlisted. Explicit, because `ipaddress.is_global` calls multicast,
# site-local and the IPv4-embedding prefixes global, and misses CGNAT metadata addresses.
# Cloud metadata sits in three of them: 169.254.169.254, 100.100.100.200, fd00:ec2::254.
# Order matters only for the message: the first match is named.
_REFUSED = _table(
    ("0.0.0.0/8", "a 'this network' address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a CGNAT shared address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol assignment address"),
    ("192.0.2.0/24", "a TEST-NET-1 documentation address"),
    ("192.88.99.0/24", "a 6to4 relay anycast address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a TEST-NET-2 documentation address"),
    ("203.0.113.0/24", "a TEST-NET-3 documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001:2::/48", "a benchmarking address"),
    ("2001:10::/28", "an ORCHID address"),
    ("2001:20::/28", "an ORCHIDv2 address"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "a segment-routing address"),
    ("fc00::/7", "a unique-local private address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_ISATAP_IIDS = (0x00005EFE, 0x02005EFE)  # interface id ...:0:5efe:a.b.c.d (u/l bit 0 or 1)


def check_url(url: str) -> tuple[str, str, int]:
    """Return ``(scheme, host, port)`` of an endpoint URL, or raise :class:`TargetRefused`.

    The host comes back IDNA-normalised to ASCII, so that ``①②⑦.⓪.⓪.①`` is judged as the
    ``127.0.0.1`` a resolver would see. Userinfo is refused outright: ``http://a@b`` is
    read differently by different parsers, and credentials belong in headers.
    """
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"refused: the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise TargetRefused("refused: the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("refused: the URL is malformed or its port is not 1..65535") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise TargetRefused(f"refused: scheme {scheme or '(none)'!r} is not http or https")
    if "@" in parts.netloc:
        raise TargetRefused("refused: user:password@ in the URL is not allowed")
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise TargetRefused("refused: the port is not a number in 1..65535")
    return scheme, _normalise_host(parts.netloc, parts.hostname or ""), port


def _normalise_host(netloc: str, host: str) -> str:
    if not host:
        raise TargetRefused("refused: the URL has no host")
    if netloc.startswith("["):
        if "%" in host:
            raise TargetRefused(f"refused: {host!r} has an IPv6 zone, meaningless off this host")
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise TargetRefused(f"refused: {host!r} is not an IPv6 address") from None
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise TargetRefused(f"refused: {host!r} is not a valid host name") from None
    if not _HOST_CHARS.fullmatch(ascii_host):
        raise TargetRefused(f"refused: {host!r} is not a valid host name")
    return ascii_host


def check_address(ip: str | IPAddress, allowed: Sequence[IPNetwork]) -> None:
    """Raise :class:`TargetRefused` unless ``ip`` is public or lies in ``allowed``.

    IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo, SIIT,
    ISATAP) are unwrapped, because the packet ends up at that IPv4 address.
    """
    _check(ip, allowed, name=None)


def _check(ip: str | IPAddress, allowed: Sequence[IPNetwork], name: str | None) -> None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise TargetRefused(f"refused: {ip!r} is not an IP address") from None
    embedded = _embedded_ipv4(address)
    if _within(address, allowed) or (embedded is not None and _within(embedded, allowed)):
        return
    # a literal is named as it was written; for a name, only the rule it broke is told,
    # never the address it resolved to (that would map a private network for the asker)
    why = _refusal(address)
    if why is not None:
        said = f"{address} is" if name is None else f"{name} resolves to"
        raise TargetRefused(f"refused: {said} {why}", NOT_ALLOWED, ALLOW_HINT)
    if embedded is not None:
        why = _refusal(embedded)
        if why is not None:
            said = (
                f"{address} embeds {embedded},"
                if name is None
                else (f"{name} resolves to an address with an IPv4 address inside,")
            )
            raise TargetRefused(f"refused: {said} {why}", NOT_ALLOWED, ALLOW_HINT)


def _refusal(address: IPAddress) -> str | None:
    """Why ``address`` is refused, or None; ``is_global`` is only a backstop to the table."""
    for network, why in _REFUSED:
        if address.version == network.version and address in network:
            return f"{why} ({network})"
    if isinstance(address, ipaddress.IPv6Address) and _embedded_ipv4(address) is not None:
        return None  # judged by the IPv4 address inside it
    if not address.is_global:
        return "not a globally routable address"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.teredo is not None:
        return address.teredo[1]  # the client, already un-inverted by ipaddress
    if address.sixtofour is not None:
        return address.sixtofour
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in net for net in (_NAT64, _NAT64_LOCAL, _SIIT, _COMPATIBLE)):
        return low32
    if (int(address) >> 32) & 0xFFFFFFFF in _ISATAP_IIDS:
        return low32
    return None


def _within(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


async def resolve_checked(host: str, port: int, allowed: Sequence[IPNetwork]) -> list[str]:
    """Resolve ``host`` once and return its addresses if every one of them is allowed.

    One refused answer refuses the host: a name that also points at 127.0.0.1 would
    otherwise reach it whenever that answer is tried first. Numeric spellings
    (``2130706433``, ``0x7f000001``, ``127.1``) resolve here without DNS, so literals
    are judged by the same code as names.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise TargetRefused(f"could not resolve {host}", UNRESOLVABLE) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise TargetRefused(f"could not resolve {host}", UNRESOLVABLE)
    name = None if _is_plain_ip(host) else host  # name the host in messages unless redundant
    for address in addresses:
        _check(address, allowed, name)
    return addresses


def _is_plain_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def check_target(url: str, allowed: Sequence[IPNetwork]) -> list[str]:
    """Check an endpoint URL at registration: syntax first, then every address it names."""
    _, host, port = check_url(url)
    return await resolve_checked(host, port, allowed)
