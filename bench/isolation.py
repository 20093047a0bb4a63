"""Isolation: what 1% of endpoints hanging or failing costs the healthy ones.

Four tenants, each with one subscriber and endpoints that want every type, every
endpoint with a 2 s attempt deadline (``timeout``) and the default retry schedule:

clean     ``HEALTHY`` endpoints that answer 204 at once
hanging   the same plus one endpoint (1%) that never answers: each attempt to it holds
          a request open for the whole 2 s deadline
failing   the same plus one endpoint (1%) that answers 500 at once
clean     again, so that drift over the run (a warming cache, a neighbour's load) falls
          on both sides of the ratio: the baseline is the mean of the two clean runs

For each, with one `hookline worker` running and idle, ``events`` events are ingested in
batches of 10 (every event fans out to all endpoints of its tenant), and the figure is
deliveries per second to the healthy endpoints, from just before the first batch to the
receiver's clock at the last healthy arrival. Ratio: with the bad 1% over clean, which
the performance budget wants at 0.9 or more.

Run once with every endpoint ``ordering: none`` (each delivery its own lane: every event
sends the bad endpoint one more request, the worst case for shared request slots) and
once with ``strict`` (the bad endpoint's one lane waits on its head).
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import Arrived, Rig, Row

HEALTHY = 99
DEADLINE = 2.0  # seconds per attempt on every endpoint of these tenants
_BATCH = 10


async def _healthy_rate(
    rig: Rig, name: str, bad: str | None, ordering: str, events: int
) -> tuple[float, Arrived]:
    """Healthy deliveries/s with ``bad`` (``hang``, ``fail`` or None) as the extra 1%."""
    paths = [f"/hook/{i}" for i in range(HEALTHY)]
    if bad is not None:
        paths.append(f"/{bad}/0")
    endpoints: list[dict[str, Any]] = [
        {"path": p, "ordering": ordering, "timeout": DEADLINE} for p in paths
    ]
    tenant = await rig.tenant(name, endpoints)
    n = HEALTHY * events
    # the worker's production defaults (256 in flight, claims of 100): this scenario
    # compares hookline with itself, not with the raw loop's concurrency of 64
    async with rig.worker(worker_concurrency=256, claim_batch=100):
        start = time.time()
        for b in range(0, events, _BATCH):
            batch = [
                {"type": "order.created", "subject": f"order_{i}", "data": {"n": i}}
                for i in range(b, min(events, b + _BATCH))
            ]
            await tenant.post_batch(batch)
        stats = await rig.until_arrived(n)
    await rig.truncate()
    return n / stats.span(start), stats


async def isolation(rig: Rig, ordering: str, events: int) -> list[Row]:
    before, _ = await _healthy_rate(rig, f"clean-{ordering}", None, ordering, events)
    bad = {
        kind: await _healthy_rate(rig, f"{kind}-{ordering}", kind, ordering, events)
        for kind in ("hang", "fail")
    }
    after, _ = await _healthy_rate(rig, f"clean-{ordering}-2", None, ordering, events)
    clean = (before + after) / 2
    rows = []
    for kind, what in (("hang", "hanging"), ("fail", "failing (500)")):
        ours, stats = bad[kind]
        tries = f"{stats.hung} requests hung" if kind == "hang" else f"{stats.failed} got 500"
        rows.append(
            Row(
                f"1% {what}, {ordering}: healthy deliveries/s",
                f"{ours:,.0f} ({tries})",
                f"{clean:,.0f} (no bad endpoint: {before:,.0f}, {after:,.0f})",
                f"{ours / clean:.2f}",
                ">= 0.90",
                ours / clean >= 0.9,
            )
        )
    return rows
