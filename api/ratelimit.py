"""Per-tenant ingest rate: events per second, counted in Redis across API processes.

A fixed one-second window per tenant (one INCRBY and one EXPIRE in a pipeline). When Redis
cannot be reached the limit is not enforced: accepting work durably matters more than
metering it, and Postgres, not Redis, is what must be up for ingest.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.http import services

log = logging.getLogger(__name__)

# Longest an ingest waits for Redis to count it, seconds: a Redis that stopped answering
# without closing its connections (paused, overloaded, cut off by the network) would
# otherwise hold every ingest for as long as it lasts.
_REDIS_WAIT = 0.5


async def admit(request: Request, tenant_id: str, events: int) -> None:
    """Count ``events`` against the tenant's second; 429 with Retry-After past the limit."""
    svc = services(request)
    limit = svc.settings.ingest_rate_limit
    if limit == 0:
        return
    second = int(time.time())
    key = f"{svc.settings.namespace}:rate:{tenant_id}:{second}"
    try:
        async with asyncio.timeout(_REDIS_WAIT), svc.redis.pipeline(transaction=False) as pipe:
            pipe.incrby(key, events)
            pipe.expire(key, 2)
            used, _ = await pipe.execute()
    except TimeoutError:
        log.warning("rate limit not enforced: Redis did not answer within %ss", _REDIS_WAIT)
        return
    except (RedisError, OSError) as exc:
        log.warning("rate limit not enforced: Redis unreachable (%s)", exc)
        return
    if int(used) > limit:
        raise HTTPException(
            429,
            f"this tenant may ingest {limit} events per second; slow down or batch less",
            headers={"retry-after": "1"},
        )
