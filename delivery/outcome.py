"""What became of one try of a delivery (:class:`AttemptResult`), and of the delivery
(:class:`Outcome`): what the dispatcher hands the recorder, and the recorder writes to the
attempts, the deliveries, endpoint health and the rollups."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from delivery.retries import Decision


@dataclass(frozen=True)
class AttemptResult:
    started_at: datetime
    duration_ms: float
    status_code: int | None = None
    error: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""

    @property
    def retry_after(self) -> str | None:
        return self.response_headers.get("retry-after")


@dataclass(frozen=True)
class Outcome:
    """A finished attempt and what it decided, waiting to be recorded. ``result`` is None
    when nothing was sent: the event had expired, so the delivery is cancelled."""

    job: asyncpg.Record
    request_headers: dict[str, str]
    result: AttemptResult | None
    decision: Decision
