"""httpx's transport interface over one aiohttp session, converting as little as possible.

``httpx_aiohttp`` did this job first; per request it built a timeout object, handed
aiohttp an ``httpx.Headers`` to iterate (which re-detects the header encoding for every
item) and wrapped each chunk read in an exception-mapping context. At thousands of
deliveries a second that was a third of the cost of a send. Here the request headers go
over as the raw byte pairs httpx already holds, the response keeps aiohttp's raw header
list, and aiohttp's exceptions become httpx's in one place.

The total deadline of an attempt is the caller's (one ``asyncio.timeout`` around
connect, send and the whole body); no per-read timeouts are set here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import lru_cache

import aiohttp
import httpx
import yarl

_CHUNK = 16 * 1024


@lru_cache(maxsize=10_000)
def _yarl(url: str) -> yarl.URL:
    # aiohttp parses a string URL on every request; endpoints repeat
    return yarl.URL(url, encoded=True)


def _mapped(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.ReadError(message, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message, request=request)
    return httpx.NetworkError(message, request=request)


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk
        except aiohttp.ClientError as exc:
            raise _mapped(exc, self._request) from exc

    async def aclose(self) -> None:
        # release(): back to the pool when the body was read to the end; closed otherwise
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Send httpx requests through an aiohttp session made on first use (inside the loop).

    Redirects are never followed and bodies are neither compressed nor decompressed: the
    caller reads the raw bytes up to its cap.
    """

    def __init__(self, create_session: Callable[[], aiohttp.ClientSession]) -> None:
        self._create_session = create_session
        self._session: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._create_session()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        if not any(k.lower() == "accept-encoding" for k, _ in headers):
            # what is kept of a response is its first bytes as text: ask for them plain
            headers.append(("Accept-Encoding", "identity"))
        try:
            response = await self._session.request(
                request.method,
                _yarl(str(request.url)),
                headers=headers,
                data=request.read() or None,
                allow_redirects=False,
                auto_decompress=False,
            )
        except aiohttp.ClientError as exc:
            raise _mapped(exc, request) from exc
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
