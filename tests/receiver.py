"""A real webhook receiver on 127.0.0.1 for tests, and waiting on conditions with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


Responder = Callable[[Received], Awaitable[web.StreamResponse] | web.StreamResponse]


@dataclass
class Receiver:
    """Records every request; answers with ``respond`` (default: 204)."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    respond: Responder | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        got = Received(
            request.path,
            {k.lower(): v for k, v in request.headers.items()},
            await request.read(),
            time.monotonic(),
        )
        self.requests.append(got)
        if self.respond is None:
            return web.Response(status=204)
        answer = self.respond(got)
        if isinstance(answer, web.StreamResponse):
            return answer
        return await answer

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def bodies(self) -> list[bytes]:
        return [r.body for r in self.requests]


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 15.0,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until true; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
