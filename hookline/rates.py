"""Ingest rates per tenant, counted in Redis across API processes: events per second and
deliveries per second (fan-out counted, not events).

Both are a generic cell rate algorithm (GCRA): one timestamp per tenant and kind in Redis,
the theoretical time by which everything let in so far would have been sent at the rate;
a tenant may be a second's worth ahead of it (the burst). A request is let in when its
events fit within the burst and the tenant's deliveries are at most a burst ahead. The
deliveries an ingest makes are known only once it has committed, so they are charged
afterwards: one request that fans out to more than a second's worth goes through, and the
next ones wait until it is paid for (debt carries over, unlike in a fixed window).

A round trip to Redis per request cost a sixth of single-event ingest, so each process
keeps a local allowance: what Redis said was left of the burst when it last asked. While
the tenant's requests here stay within a quarter of that, and the answer is younger than
:data:`SYNC_EVERY`, they are let in locally and counted in Redis at the next sync (a
request that needs Redis, or the sync loop, at most :data:`SYNC_EVERY` later). A tenant far
below its rates costs Redis about ten calls a second per process; one near them is asked
about on every request, and exactly. Several processes may let a tenant past its burst by
at most a quarter of what was left, each, between two syncs.

When Redis cannot be reached the limits are not enforced for :data:`OUTAGE_PAUSE` seconds
before it is asked again: accepting work durably matters more than metering it, and
Postgres, not Redis, is what must be up for ingest.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

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
SYNC_EVERY = 0.1  # seconds a local allowance is trusted; counts reach Redis this often
LOCAL_SHARE = 0.25  # of what Redis said was left, what one process may let in alone
OUTAGE_PAUSE = 1.0  # seconds without asking a Redis that just failed

# KEYS: events, deliveries. ARGV: now (s), events to let in (checked), events let in
# already (counted whatever the answer), s per event (0: no limit), s per delivery (0: no
# limit), burst (s), deliveries made (charged whatever the answer). Returns 'ok <events
# left> <deliveries left>' (in seconds of the burst, after this), or '<limit> <wait s>'.
_GCRA = """
local now, n, taken = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local per_event, per_delivery = tonumber(ARGV[4]), tonumber(ARGV[5])
local burst, owed = tonumber(ARGV[6]), tonumber(ARGV[7])
local function from(key)
  return math.max(tonumber(redis.call('GET', key) or '0'), now)
end
local function push(key, cost)
  local tat = from(key) + cost
  local ttl = math.ceil((tat - now + burst) * 1000)
  redis.call('SET', key, string.format('%.6f', tat), 'PX', ttl)
end
if per_event > 0 and taken > 0 then push(KEYS[1], taken * per_event) end
if per_delivery > 0 and owed > 0 then push(KEYS[2], owed * per_delivery) end
if per_event > 0 and n > 0 then
  local wait = from(KEYS[1]) + n * per_event - now - burst
  if wait > 0 then return string.format('events %.3f', wait) end
end
if per_delivery > 0 and n > 0 then
  local wait = from(KEYS[2]) - now - burst
  if wait > 0 then return string.format('deliveries %.3f', wait) end
end
if per_event > 0 and n > 0 then push(KEYS[1], n * per_event) end
local left_e, left_d = burst - (from(KEYS[1]) - now), burst - (from(KEYS[2]) - now)
return string.format('ok %.6f %.6f', left_e, left_d)
"""


@dataclass
class _Local:
    """One tenant's count in this process since Redis last heard from it."""

    events: int = 0  # let in here, not yet counted in Redis
    deliveries: int = 0  # made by ingests here, not yet charged
    events_room: float = 0.0  # what Redis said was left of the burst then, in events
    deliveries_room: float = 0.0  # the same, in deliveries
    asked: float = -math.inf  # when Redis said it (monotonic)


class IngestRates:
    """The rate limits of one installation (``HOOKLINE_INGEST_RATE_LIMIT``,
    ``HOOKLINE_TENANT_DELIVERY_RATE``), over one Redis."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._ns = settings.namespace
        self._event_rate = settings.ingest_rate_limit
        self._delivery_rate = settings.tenant_delivery_rate
        self._script = redis.register_script(_GCRA)
        self._local: dict[str, _Local] = {}
        self._syncing: asyncio.Task[None] | None = None
        self._redis_back = 0.0  # monotonic time before which Redis is not asked again

    async def admit(self, tenant_id: str, events: int) -> None:
        """Let ``events`` in, or :class:`Busy` with the wait: when they do not fit in the
        tenant's event rate, or while the deliveries its earlier ingests made are more than
        the burst ahead of its delivery rate."""
        if self._event_rate == 0 and self._delivery_rate == 0:
            return
        local = self._local.setdefault(tenant_id, _Local())
        now = time.monotonic()
        if now < self._redis_back or self._within(local, events, now):
            local.events += events
            self._sync_soon()
            return
        answer = await self._ask(tenant_id, local, events)
        if answer is not None:
            self._refuse(events, *answer)

    def charge(self, tenant_id: str, deliveries: int) -> None:
        """Count ``deliveries`` an ingest just committed against the tenant's rate (in
        Redis at the next sync)."""
        if deliveries <= 0 or self._delivery_rate == 0:
            return
        self._local.setdefault(tenant_id, _Local()).deliveries += deliveries
        self._sync_soon()

    def _within(self, local: _Local, events: int, now: float) -> bool:
        """Whether this process may let ``events`` in without asking Redis."""
        if now - local.asked > SYNC_EVERY:
            return False
        events_ok = (
            self._event_rate == 0 or local.events + events <= LOCAL_SHARE * local.events_room
        )
        deliveries_ok = (
            self._delivery_rate == 0 or local.deliveries <= LOCAL_SHARE * local.deliveries_room
        )
        return events_ok and deliveries_ok

    async def _ask(self, tenant_id: str, local: _Local, events: int) -> tuple[str, float] | None:
        """Count in Redis what this process let in and made, and ``events`` if they fit:
        None when they did, else (the limit met, seconds to wait)."""
        taken, owed = local.events, local.deliveries
        local.events = local.deliveries = 0
        answer = await self._run(tenant_id, events, taken, owed)
        if answer is None:  # Redis unreachable: let in, counted nowhere
            return None
        what, *numbers = answer.split()
        if what != "ok":
            local.asked = -math.inf  # refused: the next request asks again
            return what, float(numbers[0])
        local.asked = time.monotonic()
        local.events_room = float(numbers[0]) * self._event_rate
        local.deliveries_room = float(numbers[1]) * self._delivery_rate
        return None

    def _refuse(self, events: int, limit: str, wait: float) -> None:
        retry_after = max(1, math.ceil(wait))
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

    def _sync_soon(self) -> None:
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        """Count in Redis, every :data:`SYNC_EVERY`, what was let in and made locally."""
        while any(local.events or local.deliveries for local in self._local.values()):
            await asyncio.sleep(SYNC_EVERY)
            if time.monotonic() < self._redis_back:
                continue
            for tenant_id, local in list(self._local.items()):
                if local.events or local.deliveries:
                    await self._ask(tenant_id, local, 0)
        self._local = {t: local for t, local in self._local.items() if local.asked > 0}
        if len(self._local) > 10_000:  # tenants that stopped sending
            self._local.clear()

    async def _run(self, tenant_id: str, events: int, taken: int, owed: int) -> str | None:
        base = f"{self._ns}:rate:{tenant_id}"
        args = (
            time.time(),
            events,
            taken,
            1 / self._event_rate if self._event_rate else 0,
            1 / self._delivery_rate if self._delivery_rate else 0,
            BURST,
            owed,
        )
        try:
            async with asyncio.timeout(REDIS_WAIT):
                keys = [f"{base}:events", f"{base}:deliveries"]
                answer = await self._script(keys=keys, args=args)
        except TimeoutError:
            self._redis_failed(f"Redis did not answer within {REDIS_WAIT}s")
            return None
        except (RedisError, OSError) as exc:
            self._redis_failed(f"Redis unreachable ({exc})")
            return None
        return answer.decode() if isinstance(answer, bytes) else str(answer)

    def _redis_failed(self, why: str) -> None:
        log.warning("rate limits not enforced for %ss: %s", OUTAGE_PAUSE, why)
        self._redis_back = time.monotonic() + OUTAGE_PAUSE
