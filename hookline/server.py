"""The HTTP server of ``hookline serve``: uvicorn with limits on what clients can hold.

Why: uvicorn (0.55, httptools protocol) never times out a request head, so connections that
send part of a head and then nothing (slowloris) stay open until the process runs out of
file descriptors, and ``/healthz`` and the API stop answering. Its ``limit_concurrency``
counts open connections too, so the same slow connections turn every request into a 503.

What :class:`EdgeServer` adds, each from a ``HOOKLINE_HTTP_*`` setting:

- a client has ``http_header_timeout`` seconds to send a whole request head, from the
  moment it connects or its previous response was sent; then the connection is closed (with
  a 408 when it had started a head);
- and ``http_body_timeout`` seconds to send the body once the head is in (until the body
  is complete or the response sent): a body trickled in would hold a request slot;
- at most ``http_max_connections`` connections: a newcomer past it closes the connection
  that has waited longest for a head (partial or idle keep-alive); when every connection is
  busy with a request, the newcomer itself is closed;
- at most ``http_max_requests`` requests in progress; past it, a 503 with ``Retry-After: 1``
  (idle and partial connections do not count);
- keep-alive connections idle for ``http_keepalive_timeout`` seconds are closed (uvicorn's
  own timer);
- at start, the soft RLIMIT_NOFILE is raised so that the connections, a full accept queue
  and :data:`FD_MARGIN` descriptors for the pool, Redis and files fit; when the hard limit
  is too low, a warning and fewer connections.

It leans on uvicorn internals (checked against uvicorn 0.55): the protocol factory passes
``server_state`` to each protocol, ``ServerState.connections`` / ``.tasks``, the parser
callbacks of ``HttpToolsProtocol``, its ``_start_asgi_task``, ``cycle.response_complete``,
``timeout_keep_alive``, and ``Server.on_tick`` (every 0.1 s), which expires slow heads.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from socket import socket

import uvicorn
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from hookline.settings import Settings

log = logging.getLogger(__name__)

# Descriptors kept beside the connections: Postgres pool, Redis, log files, templates.
FD_MARGIN = 256

_TIMEOUT_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_BUSY_BODY = (
    b'{"type":"about:blank","title":"Service unavailable","status":503,'
    b'"detail":"the server is at its limit of requests in progress; retry in a second"}'
)


_COUNTS = (
    "heads timed out",
    "bodies timed out",
    "closed for a newcomer",
    "newcomers refused, all busy",
    "answered 503",
)


@dataclass(frozen=True)
class Limits:
    max_connections: int
    max_requests: int
    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    backlog: int  # listen queue; accepted in one loop turn, so it lands on top of the cap

    @classmethod
    def from_settings(cls, settings: Settings, backlog: int) -> Limits:
        return cls(
            max_connections=settings.http_max_connections,
            max_requests=settings.http_max_requests,
            header_timeout=settings.http_header_timeout,
            body_timeout=settings.http_body_timeout,
            keepalive_timeout=settings.http_keepalive_timeout,
            backlog=backlog,
        )


def fit_descriptors(limits: Limits) -> Limits:
    """Raise the soft RLIMIT_NOFILE so ``limits`` fit; if the hard limit forbids, smaller
    limits and a warning. A full accept queue is accepted in one loop turn before any
    eviction closes a connection, so the peak is connections + backlog + margin."""
    need = limits.max_connections + limits.backlog + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as exc:
            log.warning("could not raise the open files limit to %d: %s", target, exc)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return limits
    room = max(soft - FD_MARGIN, 64)
    backlog = min(limits.backlog, room // 4)
    fitted = replace(limits, max_connections=max(room - backlog, 16), backlog=backlog)
    log.warning(
        "the open files limit is %d (hard %d), too low for HOOKLINE_HTTP_MAX_CONNECTIONS=%d "
        "(needs %d: connections, listen backlog and %d for the pool, Redis and files); "
        "serving at most %d connections. Raise the hard limit (ulimit -Hn, systemd "
        "LimitNOFILE=, docker --ulimit nofile=)",
        soft,
        hard,
        limits.max_connections,
        need,
        FD_MARGIN,
        fitted.max_connections,
    )
    return fitted


class EdgeState(ServerState):
    """uvicorn's shared server state plus the connections waiting for a request head."""

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.limits = limits
        # connection -> when it started waiting (monotonic), oldest first
        self.waiting: OrderedDict[EdgeProtocol, float] = OrderedDict()
        # connection -> when its head was complete, while its body is still coming
        self.reading: OrderedDict[EdgeProtocol, float] = OrderedDict()
        self.counts = dict.fromkeys(_COUNTS, 0)  # since the last log line

    def make_room(self) -> bool:
        """For a connection just added: close the longest waiting one if over the cap.
        False when none waits (every connection is busy): the newcomer must go."""
        if len(self.connections) <= self.limits.max_connections:
            return True
        if not self.waiting:
            return False
        oldest, _ = self.waiting.popitem(last=False)
        oldest.drop()
        self.counts["closed for a newcomer"] += 1
        return True

    def expire_heads(self, now: float) -> None:
        started_before = now - self.limits.header_timeout
        while self.waiting:
            connection, since = next(iter(self.waiting.items()))
            if since > started_before:
                return
            connection.drop(_TIMEOUT_408 if connection.head_started else b"")
            self.counts["heads timed out"] += 1

    def expire_bodies(self, now: float) -> None:
        started_before = now - self.limits.body_timeout
        while self.reading:
            connection, since = next(iter(self.reading.items()))
            if since > started_before:
                return
            connection.drop(_TIMEOUT_408)  # the handler's next receive is a disconnect
            self.counts["bodies timed out"] += 1


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, keeping :class:`EdgeState` informed of whether it
    waits for a head (from connect or a sent response until a head is complete)."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        assert isinstance(server_state, EdgeState), "EdgeProtocol runs under EdgeServer"
        self.edge = server_state
        self.limit_concurrency = None  # counts connections too; tasks are limited below
        # uvicorn's own keep-alive timer; typed int there, but call_later takes a float
        self.timeout_keep_alive = server_state.limits.keepalive_timeout  # type: ignore[assignment]
        self.head_started = False

    def _wait_for_head(self) -> None:
        self.head_started = False
        self.edge.waiting.pop(self, None)
        self.edge.waiting[self] = time.monotonic()

    def drop(self, last_words: bytes = b"") -> None:
        """Close it now and stop counting it (connection_lost comes a loop turn later)."""
        self.edge.waiting.pop(self, None)
        self.edge.reading.pop(self, None)
        self.connections.discard(self)
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size():
            # it has not even taken its last response: a client that does not read must
            # not keep its socket (close() would wait for the buffer to drain)
            self.transport.abort()
            return
        if last_words:
            self.transport.write(last_words)
        self.transport.close()

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        if self.edge.make_room():
            self._wait_for_head()
        else:
            self.drop()
            self.edge.counts["newcomers refused, all busy"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.edge.waiting.pop(self, None)
        self.edge.reading.pop(self, None)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_started = True

    def on_headers_complete(self) -> None:
        self.edge.waiting.pop(self, None)
        self.edge.reading[self] = time.monotonic()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.edge.reading.pop(self, None)
        super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        if len(self.tasks) >= self.edge.limits.max_requests:
            app = _too_busy
            self.edge.counts["answered 503"] += 1
        super()._start_asgi_task(cycle, app)

    def on_response_complete(self) -> None:
        self.edge.reading.pop(self, None)  # answered: what is left of a body is not waited for
        super().on_response_complete()  # starts a pipelined request, if one is queued
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._wait_for_head()


async def _too_busy(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(_BUSY_BODY)).encode()),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BUSY_BODY, "more_body": False})


class EdgeServer(uvicorn.Server):
    """``uvicorn.Server`` serving ``config`` with the limits of ``settings`` (above)."""

    def __init__(self, config: uvicorn.Config, settings: Settings) -> None:
        assert not config.loaded, "the protocol is chosen at load"
        config.http = EdgeProtocol
        super().__init__(config)
        self.edge = EdgeState(Limits.from_settings(settings, config.backlog))
        self.server_state = self.edge

    async def startup(self, sockets: list[socket] | None = None) -> None:
        limits = self.edge.limits = fit_descriptors(self.edge.limits)
        self.config.backlog = limits.backlog
        log.info(
            "HTTP edge: at most %d connections and %d requests in progress; %g s for a "
            "request head, %g s for its body, %g s idle keep-alive",
            limits.max_connections,
            limits.max_requests,
            limits.header_timeout,
            limits.body_timeout,
            limits.keepalive_timeout,
        )
        await super().startup(sockets)

    async def on_tick(self, counter: int) -> bool:
        now = time.monotonic()
        self.edge.expire_heads(now)
        self.edge.expire_bodies(now)
        counts = self.edge.counts
        if counter % 100 == 0 and any(counts.values()):  # every 10 s at most
            # a head timing out now and then is a browser's unused preconnect; the rest
            # means the limits were reached
            pressed = any(n for what, n in counts.items() if what != "heads timed out")
            log.log(
                logging.WARNING if pressed else logging.INFO,
                "HTTP edge, last 10 s: %s",
                ", ".join(f"{n} {what}" for what, n in counts.items()),
            )
            self.edge.counts = dict.fromkeys(counts, 0)
        return await super().on_tick(counter)
