"""The worker's CPU per delivery, against a raw client's CPU per signed POST.

raw      this process sends signed POSTs to the receiver (aiohttp, ``CONCURRENCY`` at a
         time); its own CPU time (``getrusage``) over the requests sent
worker   a backlog of ``n`` events over 64 strict endpoints, batch-ingested before one
         ``hookline worker`` starts; once it is up (its start-up not counted), its CPU
         time (``/proc/PID/stat``: user + system) until every delivery is recorded as
         succeeded, over the deliveries

The worker does more per delivery than the raw loop (claim, lease, record the attempt,
health, rollups, SSRF check, its deadline and size cap); the budget is how much more.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.harness import Rig, Row, Tenant

LANES = 64
_BATCH = 1000


def _cpu_of(pid: int) -> float:
    """Seconds of CPU a process has used (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_tenant(rig: Rig) -> Tenant:
    return await rig.tenant(
        "cpu",
        [
            {"path": f"/hook/{i}", "ordering": "strict", "event_types": [f"c.{i}"]}
            for i in range(LANES)
        ],
    )


async def worker_cpu(rig: Rig, tenant: Tenant, n: int) -> Row:
    await rig.raw_posts(n, LANES)
    raw = rig.raw_cpu

    for b in range(0, n, _BATCH):
        await tenant.post_batch(
            [
                {"type": f"c.{i % LANES}", "subject": f"order_{i}", "data": {"n": i}}
                for i in range(b, min(n, b + _BATCH))
            ]
        )
    async with rig.worker() as proc:
        start = _cpu_of(proc.pid)
        await rig.until_recorded(n)
        used = _cpu_of(proc.pid) - start
    await rig.truncate()
    ours = used / n
    return Row(
        "worker CPU per delivery, a backlog on 64 strict endpoints (us)",
        f"{ours * 1e6:,.0f}",
        f"{raw * 1e6:,.0f} (raw aiohttp signed POST)",
        f"{ours / raw:.2f}",
        "<= 1.50",
        ours / raw <= 1.5,
    )
