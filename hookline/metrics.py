"""Prometheus metrics: one registry per process, made by the composition root and passed in.

Counters live in the process that counts them: an API process counts what it ingests, a
worker what it delivers. ``hookline serve`` exposes ``/metrics`` (its counters plus gauges
read from Postgres at scrape time: the due backlog and the dead letters, which are the
same from every process); ``hookline worker`` exposes its own on
``HOOKLINE_WORKER_METRICS_PORT``; ``hookline dev`` runs both in one process, so its
``/metrics`` has everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# attempt durations, seconds: a healthy receiver answers in milliseconds, a timeout is 15 s
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)


def status_class(status_code: int | None) -> str:
    """``2xx`` ... ``5xx``, or ``none`` when no answer came (timeout, refused, reset)."""
    return "none" if status_code is None else f"{status_code // 100}xx"


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.ingested = Counter(
            "hookline_ingested_events", "Events committed by ingest.", ["route"], registry=r
        )
        self.deliveries = Counter(
            "hookline_delivery_attempts",
            "Attempts by the outcome they led to and the class of the HTTP answer.",
            ["outcome", "status_class"],
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "hookline_attempt_duration_seconds",
            "Time from connecting to the end of the response body, per attempt.",
            buckets=_BUCKETS,
            registry=r,
        )
        self.purged = Counter(
            "hookline_purged_rows",
            "Rows the purge removed, by table (hookline/retention.py).",
            ["table"],
            registry=r,
        )
        self.due_lanes = Gauge(
            "hookline_due_backlog_lanes",
            "Lanes whose head is due and not in flight.",
            registry=r,
        )
        self.due_oldest = Gauge(
            "hookline_due_backlog_oldest_seconds",
            "How long the longest-waiting due lane has waited.",
            registry=r,
        )
        self.dead_letters = Gauge(
            "hookline_dead_letter_deliveries",
            "Deliveries that are failed (dead-lettered).",
            registry=r,
        )
