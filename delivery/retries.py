"""What an attempt's result means for its delivery: done, retry when, or give up.

Pure functions of the result and the policy, so the whole table of cases is tested without
a network.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

JITTER = 0.2  # +-20% on every scheduled delay, so failed bursts do not retry in lockstep

DeliveryStatus = Literal["succeeded", "retrying", "failed", "cancelled"]
EndpointAction = Literal["disable", "pause"] | None


@dataclass(frozen=True)
class Decision:
    status: DeliveryStatus
    retries_used: int
    next_attempt_at: datetime | None  # set when retrying
    endpoint_action: EndpointAction = None
    reason: str = ""


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def decide(
    *,
    status_code: int | None,
    retry_after: str | None,
    retries_used: int,
    schedule: Sequence[float],
    on_exhausted: str,
    retry_after_cap: float,
    now: datetime,
    rng: random.Random | None = None,
) -> Decision:
    """The delivery's next state after an attempt that got ``status_code`` (None: no answer).

    2xx succeeds; 3xx and everything else fail (redirects are never followed); 410 Gone
    disables the endpoint; 429/503 with ``Retry-After`` wait exactly that long (capped)
    instead of the schedule's next step.
    """
    if status_code is not None and 200 <= status_code < 300:
        return Decision("succeeded", retries_used, None)
    if status_code == 410:
        return Decision("failed", retries_used, None, "disable", "the endpoint answered 410 Gone")
    if retries_used >= len(schedule):
        action: EndpointAction = "pause" if on_exhausted == "pause" else None
        return Decision("failed", retries_used, None, action, "retries exhausted")
    delay: float | None = None
    if status_code in (429, 503):
        delay = parse_retry_after(retry_after, now)
        if delay is not None:
            delay = min(delay, retry_after_cap)
    if delay is None:
        delay = schedule[retries_used] * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return Decision("retrying", retries_used + 1, now + timedelta(seconds=delay))
