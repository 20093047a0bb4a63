"""Backlog drain after a receiver outage, against the steady-state maximum.

One tenant with ``LANES`` strict endpoints (endpoint ``i`` wants type ``d.i``, so events
spread evenly over them), each with a short retry schedule (``RETRY`` s, +-20% jitter,
enough retries for the outage) so that once the receiver is back every lane falls due
within a fraction of a second.

One worker runs throughout; it first delivers one event per lane (untimed), so that both
phases find it warm, its connections open.

steady   ``n`` events are batch-ingested and drained with the receiver answering 204
outage   the receiver answers 503 to every delivery while ``n`` events are batch-ingested,
         and the worker keeps retrying each lane's head; once every lane's head has been
         refused and the outage has lasted ``OUTAGE`` s, the receiver comes back

Both figures are deliveries per second from the first arrival to the last (receiver's
clock), so the retry wait after recovery is not counted (it is shown beside the figure);
the steady phase's ingest overlaps its first fraction of a second. Ratio: drain over steady,
which the performance budget wants at 0.8 or more.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.harness import WAIT, BenchError, Rig, Row, Tenant

LANES = 64
RETRY = 0.25  # seconds between attempts while the receiver is down
OUTAGE = 2.0  # seconds the receiver stays down at least
_BATCH = 1000


async def _ingest(tenant: Tenant, n: int) -> None:
    for b in range(0, n, _BATCH):
        await tenant.post_batch(
            [
                {"type": f"d.{i % LANES}", "subject": f"order_{i}", "data": {"n": i}}
                for i in range(b, min(n, b + _BATCH))
            ]
        )


async def _until_heads_refused(rig: Rig) -> None:
    """Wait until every lane's head has been refused at least once (is retrying)."""
    deadline = time.monotonic() + WAIT
    query = "SELECT count(*) FROM deliveries WHERE status = 'retrying'"
    while (retrying := await rig.pool.fetchval(query)) < LANES:
        if time.monotonic() > deadline:
            raise BenchError(f"only {retrying} of {LANES} lanes were refused in {WAIT:.0f}s")
        await asyncio.sleep(0.05)


async def drain(rig: Rig, n: int) -> Row:
    endpoints: list[dict[str, Any]] = [
        {
            "path": f"/hook/{i}",
            "ordering": "strict",
            "event_types": [f"d.{i}"],
            "retry_schedule": [RETRY] * 50,
        }
        for i in range(LANES)
    ]
    tenant = await rig.tenant("drain", endpoints)

    async with rig.worker():
        await _ingest(tenant, LANES)  # the warm-up
        await rig.until_arrived(LANES)
        await rig.until_recorded(LANES)
        await rig.truncate()

        await _ingest(tenant, n)
        stats = await rig.until_arrived(n)
        await rig.until_recorded(n)
        await rig.truncate()
        steady = n / stats.span()

        await rig.receiver_down(True)
        try:
            began = time.monotonic()
            await _ingest(tenant, n)
            await _until_heads_refused(rig)
            await asyncio.sleep(max(0.0, began + OUTAGE - time.monotonic()))  # the outage
            up = await rig.receiver_down(False)
            stats = await rig.until_arrived(n)
            await rig.until_recorded(n)
        finally:
            await rig.receiver_down(False)
    await rig.truncate()
    drained = n / stats.span()
    return Row(
        f"drain after a {OUTAGE:.0f}s outage, {n:,} queued on {LANES} strict (deliveries/s)",
        f"{drained:,.0f} (first {(stats.first or up) - up:.2f}s after recovery; "
        f"{stats.refused} 503s in the outage)",
        f"{steady:,.0f} (steady max)",
        f"{drained / steady:.2f}",
        ">= 0.80",
        drained / steady >= 0.8,
    )
