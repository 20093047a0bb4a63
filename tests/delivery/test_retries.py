"""The retry decision table: pure, no network."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from delivery.retries import Decision, decide, parse_retry_after

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SCHEDULE = [5.0, 300.0]


def _decide(
    status: int | None,
    used: int = 0,
    retry_after: str | None = None,
    on_exhausted: str = "dead_letter",
) -> Decision:
    return decide(
        status_code=status,
        retry_after=retry_after,
        retries_used=used,
        schedule=SCHEDULE,
        on_exhausted=on_exhausted,
        retry_after_cap=600,
        now=NOW,
        rng=random.Random(1),
    )


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_succeeds(status: int) -> None:
    assert _decide(status).status == "succeeded"


@pytest.mark.parametrize("status", [None, 301, 302, 400, 404, 500, 502])
def test_other_answers_retry_on_the_schedule_with_jitter(status: int | None) -> None:
    d = _decide(status)
    assert d.status == "retrying" and d.retries_used == 1
    assert d.next_attempt_at is not None
    delay = (d.next_attempt_at - NOW).total_seconds()
    assert 4.0 <= delay <= 6.0


def test_exhausted_dead_letters_or_pauses() -> None:
    assert _decide(500, used=2).status == "failed"
    assert _decide(500, used=2).endpoint_action is None
    paused = _decide(500, used=2, on_exhausted="pause")
    assert paused.status == "failed" and paused.endpoint_action == "pause"


def test_410_disables_the_endpoint() -> None:
    d = _decide(410)
    assert d.status == "failed" and d.endpoint_action == "disable"


@pytest.mark.parametrize(("header", "seconds"), [("120", 120), ("100000", 600)])
def test_retry_after_is_honoured_exactly_and_capped(header: str, seconds: float) -> None:
    for status in (429, 503):
        d = _decide(status, retry_after=header)
        assert d.next_attempt_at == NOW + timedelta(seconds=seconds)


def test_retry_after_as_http_date() -> None:
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", NOW) == 60.0
    assert parse_retry_after("soon", NOW) is None
