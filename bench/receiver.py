"""A webhook receiver for benchmarks, run as its own process.

    python -m bench.receiver PORT

``POST /hook/{n}``  a healthy endpoint: answers 204 and remembers when the delivery
                    (endpoint ``n`` x ``webhook-id``) first arrived; while the receiver is
                    down (``POST /mode?down=1``) it answers 503 instead and remembers nothing
``POST /fail/{n}``  an endpoint that always answers 500
``POST /hang/{n}``  an endpoint that never answers (until the sender gives up)

``GET /count``  deliveries that arrived at healthy endpoints (cheap enough to poll)
``GET /stats``  ``{"arrivals": {webhook-id: unix time of its first arrival anywhere},
                "deliveries", "first", "last" (unix times of the first and last of them),
                "refused" (503s while down), "failed", "hung"}``
``POST /reset`` forget everything (the mode stays)
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field

import orjson
from aiohttp import web

_HANG = 30.0  # longer than any attempt deadline hookline allows


@dataclass
class _Log:
    arrivals: dict[str, float] = field(default_factory=dict)
    seen: set[tuple[str, str]] = field(default_factory=set)
    first: float | None = None
    last: float | None = None
    refused: int = 0
    failed: int = 0
    hung: int = 0
    down: bool = False

    def clear(self) -> None:
        self.arrivals, self.seen = {}, set()
        self.first = self.last = None
        self.refused = self.failed = self.hung = 0


LOG = web.AppKey("log", _Log)


async def hook(request: web.Request) -> web.Response:
    await request.read()
    log = request.app[LOG]
    if log.down:
        log.refused += 1
        return web.Response(status=503)
    now = time.time()
    msg_id = request.headers.get("webhook-id", "")
    delivery = (request.match_info["n"], msg_id)
    if delivery not in log.seen:
        log.seen.add(delivery)
        log.arrivals.setdefault(msg_id, now)
        log.first = now if log.first is None else log.first
        log.last = now
    return web.Response(status=204)


async def fail(request: web.Request) -> web.Response:
    await request.read()
    request.app[LOG].failed += 1
    return web.Response(status=500)


async def hang(request: web.Request) -> web.Response:
    await request.read()
    request.app[LOG].hung += 1
    await asyncio.sleep(_HANG)
    return web.Response(status=204)


async def stats(request: web.Request) -> web.Response:
    log = request.app[LOG]
    body = {
        "arrivals": log.arrivals,
        "deliveries": len(log.seen),
        "first": log.first,
        "last": log.last,
        "refused": log.refused,
        "failed": log.failed,
        "hung": log.hung,
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def count(request: web.Request) -> web.Response:
    return web.Response(text=str(len(request.app[LOG].seen)))


async def reset(request: web.Request) -> web.Response:
    request.app[LOG].clear()
    return web.Response(status=204)


async def mode(request: web.Request) -> web.Response:
    request.app[LOG].down = request.query.get("down") == "1"
    return web.Response(status=204)


def main() -> None:
    app = web.Application()
    app[LOG] = _Log()
    app.router.add_post("/hook/{n}", hook)
    app.router.add_post("/fail/{n}", fail)
    app.router.add_post("/hang/{n}", hang)
    app.router.add_get("/stats", stats)
    app.router.add_get("/count", count)
    app.router.add_post("/reset", reset)
    app.router.add_post("/mode", mode)
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        print=None,
        access_log=None,
        shutdown_timeout=0.5,  # hanging requests must not hold up the end of a run
    )


if __name__ == "__main__":
    main()
