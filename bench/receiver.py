"""A webhook receiver for benchmarks, run as its own process: answers 204 and remembers
when each ``webhook-id`` arrived. ``GET /stats`` returns ``{"arrivals": {id: unix_time}}``,
``GET /count`` just how many (cheap enough to poll during a run).

    python -m bench.receiver PORT
"""

from __future__ import annotations

import sys
import time

import orjson
from aiohttp import web

arrivals: dict[str, float] = {}


async def hook(request: web.Request) -> web.Response:
    await request.read()
    arrivals.setdefault(request.headers.get("webhook-id", ""), time.time())
    return web.Response(status=204)


async def stats(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps({"arrivals": arrivals}), content_type="application/json")


async def count(request: web.Request) -> web.Response:
    return web.Response(text=str(len(arrivals)))


async def reset(request: web.Request) -> web.Response:
    arrivals.clear()
    return web.Response(status=204)


def main() -> None:
    app = web.Application()
    app.router.add_post("/hook/{n}", hook)
    app.router.add_get("/stats", stats)
    app.router.add_get("/count", count)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
