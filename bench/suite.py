"""The scenarios by name, their sizes, and the order they run in.

Every scenario runs beside its baseline in the same invocation; ``--quick`` shrinks the
sizes, never the set of scenarios.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench import e2e
from bench.cpu import cpu_tenant, worker_cpu
from bench.drain import drain
from bench.fanout import fanout
from bench.harness import Row, open_rig, print_table
from bench.isolation import isolation
from bench.retention import purge_cost
from bench.storage import bytes_per_delivery

#: In the order they run; ``latency`` runs ``e2e`` first (its half load is half that rate).
SCENARIOS = (
    "ingest",
    "batch",
    "e2e",
    "latency",
    "fanout",
    "isolation",
    "drain",
    "cpu",
    "purge",
    "storage",
)


@dataclass(frozen=True)
class Sizes:
    events: int  # ingest and e2e: events, one delivery each
    latency_seconds: float  # of offered load per latency run
    fanout_events: tuple[int, int]  # events sent to 100 and to 1,000 endpoints
    isolation_events: tuple[int, int]  # per isolation phase, none and strict, to 100 each
    backlog: int  # events queued (one delivery each) in each drain phase
    history: int  # old events (one delivery, three attempts each) a purge pass removes


QUICK = Sizes(3000, 4.0, (20, 5), (40, 100), 4000, 40_000)
FULL = Sizes(12000, 10.0, (100, 10), (200, 400), 24000, 200_000)


class _Progress:
    """Rows as they come, on stderr: the full run takes minutes."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self._began = self._last = time.monotonic()

    def add(self, *rows: Row) -> None:
        now = time.monotonic()
        for row in rows:
            self.rows.append(row)
            print(
                f"[{now - self._began:6.1f}s, +{now - self._last:4.1f}s] {row.scenario}: "
                f"{row.ours} vs {row.baseline}",
                file=sys.stderr,
                flush=True,
            )
        self._last = now


async def run(admin_url: str, redis_url: str, names: Sequence[str], *, quick: bool) -> None:
    """Run the scenarios in ``names`` (in :data:`SCENARIOS` order) and print the table."""
    sizes = QUICK if quick else FULL
    wanted = set(names)
    done = _Progress()
    async with open_rig(admin_url, redis_url) as rig:
        if wanted & {"ingest", "batch", "e2e", "latency"}:
            tenant = await e2e.e2e_tenant(rig)
            if "ingest" in wanted:
                hot = await e2e.hot_tenant(rig)
                done.add(*await e2e.ingest(rig, tenant, hot, sizes.events))
            if "batch" in wanted:
                done.add(await e2e.batch_ingest(rig, tenant, sizes.events * 10))
            if wanted & {"e2e", "latency"}:
                row, rate = await e2e.e2e(rig, tenant, sizes.events)
                done.add(row)
            if "e2e" in wanted:
                # the delivery path without one commit per event in front of it
                done.add((await e2e.e2e(rig, tenant, sizes.events * 4, batch=100))[0])
            if "latency" in wanted:
                seconds = sizes.latency_seconds
                half = f"half of e2e {rate:,.0f}/s"
                done.add(await e2e.latency(rig, tenant, rate / 2, seconds, half))
                done.add(await e2e.latency(rig, tenant, e2e.FIXED_RATE, seconds, "fixed"))
                for cores in (1, 2):
                    done.add(
                        await e2e.latency(rig, tenant, e2e.FIXED_RATE, seconds, "fixed", busy=cores)
                    )
                done.add(
                    await e2e.latency(rig, tenant, e2e.FIXED_RATE, seconds, "fixed", logins=20)
                )
        if "fanout" in wanted:
            for endpoints, events in zip((100, 1000), sizes.fanout_events, strict=True):
                done.add(await fanout(rig, endpoints, events))
        if "isolation" in wanted:
            for ordering, events in zip(("none", "strict"), sizes.isolation_events, strict=True):
                done.add(*await isolation(rig, ordering, events))
        if "drain" in wanted:
            done.add(await drain(rig, sizes.backlog))
        if "cpu" in wanted:
            done.add(await worker_cpu(rig, await cpu_tenant(rig), sizes.backlog))
        if "purge" in wanted:
            tenant = await e2e.e2e_tenant(rig)
            done.add(*await purge_cost(rig, tenant, sizes.history, sizes.latency_seconds))
        if "storage" in wanted:
            tenant = await e2e.e2e_tenant(rig)
            done.add(*await bytes_per_delivery(rig, tenant, sizes.events * 2))
    print_table(done.rows)
