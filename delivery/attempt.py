"""One HTTP try of a delivery: the request as the README describes it, sent under one deadline.

The deadline covers connect, send and the whole response body: httpx's own timeouts are
per read, so a receiver dripping one byte a second would never trip them. The body is read
raw (not decompressed) and only up to a cap, then the connection is dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache

import httpx

from delivery.outcome import AttemptResult
from hookline import __version__
from hookline.targets import TargetRefused
from hookline.vault import REDACTED, is_credential

USER_AGENT = f"hookline/{__version__}"
EXCERPT_BYTES = 4096  # of a response body, kept on the attempt for people to read


@lru_cache(maxsize=10_000)
def _parsed(url: str) -> httpx.URL:
    # parsing a URL is a fifth of httpx's cost per request; endpoints repeat
    return httpx.URL(url)


def request_headers(
    *,
    custom: Mapping[str, str],
    content_type: str,
    msg_id: str,
    timestamp: int,
    signature: str,
    attempt: int,
    sequence: int | None,
) -> dict[str, str]:
    """Custom headers first, so an endpoint's headers can never replace the signed ones."""
    headers = {k.lower(): v for k, v in custom.items()}
    headers.update(
        {
            "content-type": content_type,
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
            "hookline-attempt": str(attempt),
        }
    )
    if sequence is not None:
        headers["hookline-sequence"] = str(sequence)
    return headers


def redacted(headers: Mapping[str, str], marked: Sequence[str]) -> dict[str, str]:
    """Headers fit to store and show: the values of credential headers (those whose names
    say so, and those the endpoint ``marked`` sensitive) hidden."""
    return {k: (REDACTED if is_credential(k, marked) else v) for k, v in headers.items()}


def _refusal(exc: TargetRefused) -> str:
    # the policy's messages mostly begin "refused: " already ("could not resolve" does not);
    # say it once, so a stored error reads "refused: 10.0.0.5 is ...", never "refused: refused:"
    text = str(exc)
    return text if text.startswith("refused: ") else f"refused: {text}"


async def send(
    transport: httpx.AsyncBaseTransport,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    deadline: float,
    max_bytes: int,
) -> AttemptResult:
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    status_code: int | None = None
    response_headers: dict[str, str] = {}
    received = bytearray()
    error: str | None = None
    try:
        async with asyncio.timeout(deadline):
            # a ready stream skips httpx's body encoding and header preparation (a quarter
            # of building a request); aiohttp sets Host and Content-Length itself
            request = httpx.Request(
                "POST", _parsed(url), headers=headers, stream=httpx.ByteStream(body)
            )
            response = await transport.handle_async_request(request)
            try:
                status_code = response.status_code
                # the raw pairs and the stream itself: httpx's decoded views and its
                # per-chunk bookkeeping cost more than the rest of reading a response
                response_headers = {
                    k.decode("latin-1").lower(): v[:512].decode("latin-1")
                    for k, v in response.headers.raw
                }
                stream = response.stream
                assert isinstance(stream, httpx.AsyncByteStream)
                async for chunk in stream:
                    received += chunk
                    if len(received) >= max_bytes:
                        break  # enough: closing drops the connection
            finally:
                await response.aclose()
    except TimeoutError:
        error = f"timeout after {deadline:g}s"
    except TargetRefused as exc:
        error = _refusal(exc)
    except httpx.HTTPError as exc:
        cause = exc.__cause__
        if isinstance(cause, TargetRefused):
            error = _refusal(cause)
        else:
            error = f"{type(exc).__name__}: {exc}"[:500]
    except Exception as exc:
        # whatever a hostile or broken receiver provokes is that attempt's failure; it must
        # never crash the lane task and leave the lane leased until the lease runs out
        error = f"{type(exc).__name__}: {exc}"[:500]
    if error is not None and status_code is not None:
        # the status line came but the body did not finish in time: not a success
        error = f"{error} (after HTTP {status_code})"
        status_code = None
    return AttemptResult(
        started_at=started_at,
        duration_ms=(time.perf_counter() - clock) * 1000,
        status_code=status_code,
        error=error,
        response_headers=response_headers,
        response_body=_excerpt(received),
    )


def _excerpt(body: bytearray) -> str:
    """The start of a response body as text Postgres can store. Postgres refuses NUL in
    text, and one unstorable excerpt (any gzip or binary body has NULs) would fail the
    recording of every result batched with it, again and again."""
    return bytes(body[:EXCERPT_BYTES]).decode("utf-8", "replace").replace("\x00", "\ufffd")
