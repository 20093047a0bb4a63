"""Fan-out: one event to many endpoints.

A tenant with one subscriber and ``endpoints`` endpoints (100 or 1,000) that want every
type, each with the default ``ordering: strict`` (one lane per endpoint). With one
`hookline worker` running and idle, one producer POSTs ``events`` single events one after
another; every event becomes ``endpoints`` deliveries. The figure is deliveries per second
from just before the first POST to the receiver's clock at the last arrival (the run then
waits, untimed, until all are recorded as succeeded).

Baseline: the same number of signed POSTs from one process to the same receiver, spread
over the same endpoint paths, as many at a time as the worker's concurrency.
Ratio: hookline deliveries/s over raw POSTs/s; held to the end-to-end budget (>= 0.5).
"""

from __future__ import annotations

import time

from bench.harness import Rig, Row


async def fanout(rig: Rig, endpoints: int, events: int) -> Row:
    tenant = await rig.tenant(
        f"fanout-{endpoints}",
        [{"path": f"/hook/{i}", "ordering": "strict"} for i in range(endpoints)],
    )
    n = endpoints * events
    baseline = await rig.raw_posts(n, endpoints)
    async with rig.worker():
        start = time.time()
        for i in range(events):
            event = {"type": "order.created", "subject": f"order_{i}", "data": {"n": i}}
            await tenant.post(event)
        stats = await rig.until_arrived(n)
        await rig.until_recorded(n)
    await rig.truncate()
    ours = n / stats.span(start)
    return Row(
        f"fan-out 1 -> {endpoints:,}, {events} events, strict (deliveries/s)",
        f"{ours:,.0f}",
        f"{baseline:,.0f}",
        f"{ours / baseline:.2f}",
        ">= 0.50",
        ours / baseline >= 0.5,
    )
