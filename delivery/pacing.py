"""Per-endpoint limits applied when lanes are claimed: in-flight caps and rate limits.

A claim sees, for every candidate lane, its endpoint's cap and how many of its lanes are
leased already (by any worker), and, for a rate-limited endpoint, its pace. Claims run one
at a time under a transaction-level advisory lock, so these counts are exact across
workers and the decisions here cannot be raced past.

Rate limits are a generic cell rate algorithm (GCRA): one timestamp per endpoint, the
theoretical arrival time (``tat``) of its next delivery. A limit of ``r`` per second allows
a burst of a tenth of a second's worth (at least one), so in any window of ``w`` seconds an
endpoint receives at most ``r * w + burst`` deliveries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Pace:
    tat: datetime  # theoretical arrival time of the next delivery
    free_at: datetime  # nothing may be sent before this


def burst(rate: int) -> int:
    """Deliveries that may go back to back: a tenth of a second's worth, at least one."""
    return max(1, math.ceil(rate / 10))


def allowance(rate: int, tat: datetime | None, now: datetime) -> int:
    """How many deliveries an endpoint limited to ``rate`` per second may be sent now."""
    interval = 1.0 / rate
    slack = (burst(rate) - 1) * interval
    ahead = 0.0 if tat is None else max(0.0, (tat - now).total_seconds())
    # one more may go while the backlog ahead of now stays within the burst's slack
    return max(0, math.floor((slack - ahead) / interval + 1e-9) + 1)


def advance(rate: int, tat: datetime | None, now: datetime, sent: int) -> Pace:
    """The pace after ``sent`` deliveries were handed out at ``now``."""
    interval = 1.0 / rate
    start = now if tat is None or tat < now else tat
    new_tat = start + timedelta(seconds=sent * interval)
    slack = timedelta(seconds=(burst(rate) - 1) * interval)
    return Pace(new_tat, new_tat - slack)


@dataclass(frozen=True)
class Candidate:
    """A due lane a claim found, with what its endpoint allows."""

    lane_id: int
    endpoint_id: str
    tenant_id: str
    active: bool
    cap: int  # lanes of the endpoint that may be in flight at once
    busy: int  # lanes of the endpoint leased now, by any worker
    rate: int | None
    tat: datetime | None


@dataclass(frozen=True)
class Admission:
    lease: dict[int, int]  # lane id -> deliveries it may send in this lease
    park: list[int]  # lanes whose endpoint is not active


def admit(
    candidates: list[Candidate],
    *,
    want: int,
    now: datetime,
    lane_batch: int,
    local_busy: dict[str, int],
    local_cap: int,
    tenant_room: dict[str, int],
) -> Admission:
    """Which candidate lanes to lease (``want`` at most, taken in the order given: the
    claim gives them tenant by tenant), and how much each may send.

    ``local_busy`` counts this worker's lanes in flight per endpoint; ``local_cap`` bounds
    it, so one endpoint cannot fill every slot of a worker (a hanging receiver with a
    large ``max_in_flight`` would otherwise hold the whole worker for its timeouts).
    ``tenant_room`` is how many more lanes each tenant may take here (see
    :func:`tenant_rooms`). A rate-limited endpoint gets one lane per claim, sending no more
    than its allowance. Lanes not leased stay due.
    """
    lease: dict[int, int] = {}
    park: list[int] = []
    taken: dict[str, int] = {}
    room_left = dict(tenant_room)
    for c in candidates:
        if not c.active:
            park.append(c.lane_id)
            continue
        if len(lease) >= want:
            continue  # still looking for lanes to park
        if room_left.get(c.tenant_id, 0) <= 0:
            continue
        mine = taken.get(c.endpoint_id, 0)
        room = min(c.cap - c.busy, local_cap - local_busy.get(c.endpoint_id, 0)) - mine
        if c.rate is not None:
            room = min(room, 1 - mine)
        if room <= 0:
            continue
        limit = lane_batch
        if c.rate is not None:
            limit = min(limit, allowance(c.rate, c.tat, now))
            if limit <= 0:
                continue
        lease[c.lane_id] = limit
        taken[c.endpoint_id] = mine + 1
        room_left[c.tenant_id] -= 1
    return Admission(lease, park)


def tenant_cap(slots: int, others: int, share: float) -> int:
    """The most lanes one tenant may hold in a worker of ``slots`` while other tenants hold
    ``others``: ``share`` of what they leave, at least one.

    Because each tenant may take only a share of what the others leave free, some slots
    are always free for a tenant that has nothing in flight yet: with the default share of
    a half, one busy tenant holds at most half the slots, two settle at a third each, and
    a third stays free. So a tenant's hanging receivers or its huge backlog delay another
    tenant's next delivery by a claim, not by a timeout.
    """
    return max(1, math.floor(share * max(0, slots - others)))


def tenant_rooms(busy: dict[str, int], slots: int, share: float) -> tuple[dict[str, int], int]:
    """How many more lanes each tenant with lanes in flight may take (``busy``: tenant ->
    lanes in flight here), and how many a tenant with none in flight may take."""
    total = sum(busy.values())
    rooms = {t: tenant_cap(slots, total - n, share) - n for t, n in busy.items()}
    return rooms, tenant_cap(slots, total, share)
