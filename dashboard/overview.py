"""The overview: the first page either audience sees after signing in.

Volume, success rate and latency over a time range as SVG charts, the cards that say how
things stand now (dead letters, the backlog), the endpoints whose health needs a look, and
for operators what is kept (the retention, the oldest event, each table's size).
Every number comes from the rollups, endpoints, lanes and the dead-letter index through
:mod:`hookline.activity`, never from scanning attempts, so the page stays fast however
long the history. A portal session sees its own endpoints only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from dashboard import charts
from dashboard.web import render, viewer
from hookline.activity import (
    Bucket,
    activity,
    activity_now,
    failing_endpoints,
    total,
    window,
)
from hookline.retention import storage
from hookline.services import services
from hookline.tenants import tenant_settings

FAILING_SHOWN = 10


@dataclass(frozen=True)
class Span:
    """A time range the overview offers: ``buckets`` bars of ``width`` each."""

    key: str
    label: str
    width: timedelta
    buckets: int
    time_format: str  # strftime of the axis labels (UTC)

    def describe(self) -> str:
        minutes = self.width.total_seconds() / 60
        per = f"{minutes:.0f} minutes" if minutes < 60 else "hour"
        return f"{self.label.lower()}, per {'minute' if minutes == 1 else per}"


SPANS = {
    s.key: s
    for s in (
        Span("1h", "Last hour", timedelta(minutes=1), 60, "%H:%M"),
        Span("24h", "Last 24 hours", timedelta(minutes=15), 96, "%H:%M"),
        Span("7d", "Last 7 days", timedelta(hours=1), 168, "%a %d %H:%M"),
    )
}
DEFAULT_SPAN = "24h"


def _ms(value: float | None) -> str:
    return "-" if value is None else charts.ms_label(value)


def _age(seconds: float) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


async def _storage(request: Request, tenant_id: str) -> dict[str, Any]:
    """What the purge keeps in check (operators only: sizes are the installation's)."""
    svc = services(request)
    tables, oldest = await storage(svc.pool, tenant_id)
    own = (await tenant_settings(svc.pool, tenant_id))["retention"]
    largest = max((t["bytes"] for t in tables), default=0) or 1
    return {
        "tables": [{**dict(t), "share": 100 * t["bytes"] / largest} for t in tables if t["bytes"]],
        "total_bytes": sum(t["bytes"] for t in tables),
        "oldest": oldest,
        "retention_days": (own or svc.settings.retention) / 86400,
        "retention_own": own is not None,
    }


def _charts(span: Span, buckets: list[Bucket]) -> dict[str, object]:
    labels = [b.at.astimezone(UTC).strftime(span.time_format) for b in buckets]
    ok = [b.succeeded for b in buckets]
    bad = [b.failed for b in buckets]
    return {
        "volume": charts.stacked_bars("Attempts: succeeded and failed", labels, ok, bad),
        "rate": charts.lines(
            "Success rate",
            labels,
            [charts.Series("success rate", [b.success_rate for b in buckets], "line ok")],
            charts.percent_label,
            top=100.0,
        ),
        "latency": charts.lines(
            "Latency: p50 and p95",
            labels,
            [
                charts.Series("p50", [b.percentile(0.5) for b in buckets], "line"),
                charts.Series("p95", [b.percentile(0.95) for b in buckets], "line p95"),
            ],
            charts.ms_label,
        ),
    }


async def overview(request: Request) -> Response:
    session = await viewer(request)
    pool = services(request).pool
    span = SPANS.get(request.query_params.get("range", ""), SPANS[DEFAULT_SPAN])
    scope = session.subscriber_id
    now = await activity_now(pool, session.tenant_id, scope)
    context: dict[str, Any] = {
        "span": span,
        "spans": list(SPANS.values()),
        "now": now,
        "ms": _ms,
        "age": _age,
        "size": _bytes,
    }
    if now["endpoints"] and now["has_events"]:
        start = window(datetime.now(UTC), span.width, span.buckets)
        buckets = await activity(
            pool,
            session.tenant_id,
            start=start,
            width=span.width,
            buckets=span.buckets,
            subscriber_id=scope,
        )
        summed = total(buckets)
        failing = await failing_endpoints(pool, session.tenant_id, scope, FAILING_SHOWN)
        context.update(
            first_steps=False,
            summed=summed,
            p50=summed.percentile(0.5),
            p95=summed.percentile(0.95),
            failing=failing,
            failing_total=failing[0]["total"] if failing else 0,
            **_charts(span, buckets),
        )
        if not session.is_subscriber:
            context["storage"] = await _storage(request, session.tenant_id)
    else:
        context["first_steps"] = True
    return await render(request, "overview.html", session, title="Overview", **context)


routes: list[BaseRoute] = [Route("/", overview, methods=["GET"])]
