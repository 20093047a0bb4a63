"""Ingest rates per tenant, counted in Redis across API processes: events per second and
deliveries per second (fan-out counted, not events).

Both are a generic cell rate algorithm (GCRA): one timestamp per tenant and kind, the
theoretical time by which everything let in so far would have been sent at the rate; a
tenant may be a second's worth ahead of it (the burst). Events are known before the
ingest: a request is let in when its events fit within the burst, and moves the time on.
The deliveries an ingest makes are known only once it has committed, so they are checked
before (let in while the tenant is at most a burst ahead) and charged after: a request
that fans out to more than a second's worth goes through, and the tenant's next requests
wait until its deliveries are paid for. Debt carries over, unlike in a fixed window.

When Redis cannot be reached the limits are not enforced: accepting work durably matters
more than metering it, and Postgres, not Redis, is what must be up for ingest.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hookline.errors import Busy
from hookline.settings import Settings

log = logging.getLogger(__name__)

# Longest an ingest waits for Redis to count it, seconds: a Redis that stopped answering
# without closing its connections (paused, overloaded, cut off by the network) would
# otherwise hold every ingest for as long as it lasts.
REDIS_WAIT = 0.5
BURST = 1.0  # seconds' worth a tenant may send ahead of its rate

# KEYS: events, deliveries. ARGV: now (s), events to let in, s per event (0: no limit),
# s per delivery (0: no limit), burst (s), deliveries to charge. Returns '0' when let in
# (and charged), else which limit it met and the seconds to wait: 'events 0.25'.
_GCRA = """
local now, n, per_event = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local per_delivery, burst, charge = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local function from(key)
  return math.max(tonumber(redis.call('GET', key) or '0'), now)
end
local function push(key, cost)
  local tat = from(key) + cost
  local ttl = math.ceil((tat - now + burst) * 1000)
  redis.call('SET', key, string.format('%.6f', tat), 'PX', ttl)
end
if per_event > 0 and n > 0 then
  local wait = from(KEYS[1]) + n * per_event - now - burst
  if wait > 0 then return string.format('events %.3f', wait) end
end
if per_delivery > 0 and charge == 0 then
  local wait = from(KEYS[2]) - now - burst
  if wait > 0 then return string.format('deliveries %.3f', wait) end
end
if per_event > 0 and n > 0 then push(KEYS[1], n * per_event) end
if per_delivery > 0 and charge > 0 then push(KEYS[2], charge * per_delivery) end
return '0'
"""


class IngestRates:
    """The rate limits of one installation (``HOOKLINE_INGEST_RATE_LIMIT``,
    ``HOOKLINE_TENANT_DELIVERY_RATE``), over one Redis."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._ns = settings.namespace
        self._event_rate = settings.ingest_rate_limit
        self._delivery_rate = settings.tenant_delivery_rate
        self._script = redis.register_script(_GCRA)

    async def admit(self, tenant_id: str, events: int) -> None:
        """Let ``events`` in, or :class:`Busy` with the wait: when they do not fit in the
        tenant's event rate, or while the deliveries its earlier ingests made are more than
        the burst ahead of its delivery rate."""
        answer = await self._run(tenant_id, events, 0)
        if answer == "0":
            return
        limit, _, wait = answer.partition(" ")
        retry_after = max(1, math.ceil(float(wait)))
        if limit == "events":
            most = math.floor(self._event_rate * BURST)
            raise Busy(
                f"this tenant may ingest {self._event_rate} events per second "
                f"(HOOKLINE_INGEST_RATE_LIMIT)"
                + (
                    f"; a request may carry at most {most}"
                    if events > most
                    else "; slow down or batch less"
                ),
                retry_after=retry_after,
            )
        raise Busy(
            f"this tenant's events made more deliveries than the {self._delivery_rate} per "
            "second it may create (HOOKLINE_TENANT_DELIVERY_RATE, fan-out counted); send "
            "again after Retry-After seconds",
            retry_after=retry_after,
        )

    async def charge(self, tenant_id: str, deliveries: int) -> None:
        """Count ``deliveries`` an ingest just committed against the tenant's rate."""
        if deliveries > 0 and self._delivery_rate > 0:
            await self._run(tenant_id, 0, deliveries)

    async def _run(self, tenant_id: str, events: int, deliveries: int) -> str:
        if self._event_rate == 0 and self._delivery_rate == 0:
            return "0"
        base = f"{self._ns}:rate:{tenant_id}"
        args = (
            time.time(),
            events,
            1 / self._event_rate if self._event_rate else 0,
            1 / self._delivery_rate if self._delivery_rate else 0,
            BURST,
            deliveries,
        )
        try:
            async with asyncio.timeout(REDIS_WAIT):
                keys = [f"{base}:events", f"{base}:deliveries"]
                answer = await self._script(keys=keys, args=args)
        except TimeoutError:
            log.warning("rate limit not enforced: Redis did not answer within %ss", REDIS_WAIT)
            return "0"
        except (RedisError, OSError) as exc:
            log.warning("rate limit not enforced: Redis unreachable (%s)", exc)
            return "0"
        return answer.decode() if isinstance(answer, bytes) else str(answer)
