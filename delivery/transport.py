"""Transport: the one outbound HTTP client, with the SSRF guard built into its connections.

httpx's API runs over aiohttp's connection pool (:mod:`delivery.aiohttp_transport`).
aiohttp asks a resolver for every new connection to a host name (``use_dns_cache=False``), and
:class:`GuardedResolver` answers only with addresses that :mod:`hookline.targets` allows,
so the socket goes to exactly the address that was checked while the name stays in the
URL for the Host header and TLS SNI.

aiohttp does not ask the resolver about IP literals (``TCPConnector._resolve_host``
returns any host that ``aiohttp.helpers.is_ip_address`` accepts as-is), so
:class:`_GuardedTransport` checks those before handing the request to aiohttp. A literal
involves no DNS, so that check judges the very address aiohttp connects to.

Exceptions::

    hookline.targets.TargetRefused    httpx.ConnectError
                       └──── GuardRefused ────┘
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.helpers import is_ip_address

from delivery.aiohttp_transport import AiohttpTransport
from hookline.settings import Settings
from hookline.targets import IPNetwork, TargetRefused, check_address, resolve_checked

_USER_AGENT = "hookline"


class GuardRefused(httpx.ConnectError, TargetRefused):
    """The client refused to connect to a target the SSRF policy does not allow.

    An ``httpx.ConnectError``, so code handling transport failures sees a failed connect;
    a ``TargetRefused``, so code that cares can tell a policy refusal from a dead server.
    """


class GuardedResolver(AbstractResolver):
    """Resolve through :func:`hookline.targets.resolve_checked`: all answers allowed, or none."""

    def __init__(self, allowed: Sequence[IPNetwork]) -> None:
        self._allowed = tuple(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_checked(host, port, self._allowed)
        # Flags say "already numeric", as aiohttp's own resolvers do.
        flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=flags,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to release: resolution borrows the event loop's getaddrinfo."""


class _GuardedTransport(httpx.AsyncBaseTransport):
    """Refuse IP-literal targets aiohttp would connect to unasked; raise refusals as httpx's."""

    def __init__(self, inner: httpx.AsyncBaseTransport, allowed: Sequence[IPNetwork]) -> None:
        self._inner = inner
        self._allowed = tuple(allowed)
        self._allowed_literals: set[str] = set()  # the policy is fixed for our lifetime
        self._named: set[httpx.URL] = set()  # URLs to host names, of an allowed shape

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        try:
            if url not in self._named:
                if url.scheme not in ("http", "https") or url.userinfo:
                    # registration refuses these too; a URL edited in the database must not
                    # turn into a WebSocket handshake or carry Basic credentials
                    raise TargetRefused(f"refused: only http(s) URLs without user info, not {url}")
                if is_ip_address(url.host):
                    await self._check_literal(url)
                elif len(self._named) < 10_000:
                    # a host name is judged at connect time (GuardedResolver); its URL's
                    # shape needs looking at once
                    self._named.add(url)
            return await self._inner.handle_async_request(request)
        except TargetRefused as exc:
            # From the check above, or from GuardedResolver, which aiohttp lets through
            # unwrapped because it is not an OSError.
            raise GuardRefused(str(exc), request=request) from exc

    async def _check_literal(self, url: httpx.URL) -> None:
        if url.host in self._allowed_literals:
            return
        try:
            address = ipaddress.ip_address(url.host)
        except ValueError:
            # numeric spellings (2130706433, 127.1): let getaddrinfo say what they mean
            await resolve_checked(url.host, url.port or 0, self._allowed)
            return
        # a standard spelling is judged without getaddrinfo, whose thread hop per request
        # cost a third of a worker's CPU
        check_address(address, self._allowed)
        if len(self._allowed_literals) < 10_000:
            self._allowed_literals.add(url.host)

    async def aclose(self) -> None:
        await self._inner.aclose()


def tls_context(settings: Settings) -> ssl.SSLContext | bool:
    """Certificates are always verified: against the system's authorities, plus those of
    ``HOOKLINE_TLS_CA_FILE`` when set (a private CA of internal receivers)."""
    if settings.tls_ca_file is None:
        return True  # aiohttp's verifying default context
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(settings.tls_ca_file))
    return context


def _session_factory(settings: Settings) -> Callable[[], aiohttp.ClientSession]:
    def create_session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(settings.allowed_networks),
            use_dns_cache=False,  # every new connection is resolved and checked again
            limit=settings.worker_concurrency,
            ssl=tls_context(settings),
        )
        return aiohttp.ClientSession(
            connector=connector,
            trust_env=False,  # HTTP(S)_PROXY would carry requests past the guard
            auto_decompress=False,  # the caller caps the raw bytes
        )

    return create_session


def create_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """The guarded transport alone: what the dispatcher sends through.

    Going straight to the transport skips the client's cookie jar (a receiver's cookies
    must never ride along to later deliveries), auth and redirect layers, which cost more
    CPU per request than the send itself.
    """
    inner = AiohttpTransport(_session_factory(settings))
    return _GuardedTransport(inner, settings.allowed_networks)


def create_http_client(settings: Settings) -> httpx.AsyncClient:
    """Build the delivery client; close it with ``await client.aclose()``.

    The aiohttp session is made on the first request, inside the running loop, so this
    can be called anywhere; ``aclose`` closes it (and is a no-op if it was never made).
    Redirects are never followed: a 3xx is the subscriber's answer, and following it
    would send the payload to a URL nobody checked.
    """
    return httpx.AsyncClient(
        transport=create_transport(settings),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(settings.delivery_timeout),
        # Identity, so the body kept for the delivery log is readable bytes, not gzip.
        headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"},
    )
