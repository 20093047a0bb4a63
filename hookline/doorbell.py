"""The doorbell: a Redis pub/sub message that wakes delivery workers after an ingest commit.

It carries no data and holds no state: a lost ring only delays work until the next sweep,
because Postgres alone says what is due. Rings are coalesced so a burst of ingests costs one
publish at a time, and a Redis outage never fails or slows an ingest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def channel(namespace: str) -> str:
    return f"{namespace}:doorbell"


class Doorbell:
    """Rings from the API side; never raises, never waits on Redis."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self._redis = redis
        self._channel = channel(namespace)
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def ring(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True  # one more publish after the one in flight covers this ring
            return
        self._task = asyncio.create_task(self._publish())

    async def _publish(self) -> None:
        again = True
        while again:
            self._again = False
            try:
                await self._redis.publish(self._channel, b"1")
            except (RedisError, OSError) as exc:
                log.warning("doorbell: could not reach Redis (%s); workers will sweep", exc)
                return
            again = self._again


async def listen(redis: Redis, namespace: str, retry_delay: float = 1.0) -> AsyncIterator[None]:
    """Yield once per ring, reconnecting after Redis goes away (a restart, a flush)."""
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel(namespace))
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        yield None
        except (RedisError, OSError) as exc:
            log.warning("doorbell: lost Redis (%s); retrying in %.1fs", exc, retry_delay)
            await asyncio.sleep(retry_delay)
