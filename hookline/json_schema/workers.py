"""Worker threads for schema work that may be long, shared fairly between tenants.

Validations that do not finish within the event loop's small step budget, and the checks of
big schemas at registration, run here: at most ``threads`` at once in the process, and at
most ``per_tenant`` of those for one tenant, so one tenant's expensive events queue behind
each other instead of taking every thread. A tenant's waiters wait on its own semaphore
before they take a process-wide slot: a queue of one tenant never holds slots idle.

The GIL still applies: a thread validating in pure Python competes with the event loop for
the interpreter (the loop gets it back at least every ``sys.getswitchinterval()``, 5 ms), so
the per-tenant bound and the step budget of each validation are what keep other tenants'
latency flat, not the threads alone.

Nothing here binds to an event loop when imported: the executor is made on first use and the
semaphores per running loop (a process may run loops one after another, as tests do).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class _Tenant:
    slots: asyncio.Semaphore
    users: int = 0


@dataclass
class _Loop:
    slots: asyncio.Semaphore
    tenants: dict[str, _Tenant] = field(default_factory=dict)


class SchemaWorkers:
    def __init__(self, threads: int, per_tenant: int) -> None:
        if not 1 <= per_tenant <= threads:
            raise ValueError("per_tenant must be between 1 and threads")
        self.threads = threads
        self.per_tenant = per_tenant
        self._executor: ThreadPoolExecutor | None = None
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, tenant_id: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker thread, when ``tenant_id`` and the process
        have a free slot."""
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _Loop(asyncio.Semaphore(self.threads))
        tenant = state.tenants.get(tenant_id)
        if tenant is None:
            tenant = state.tenants[tenant_id] = _Tenant(asyncio.Semaphore(self.per_tenant))
        tenant.users += 1
        try:
            async with tenant.slots, state.slots:
                return await loop.run_in_executor(self._pool(), lambda: fn(*args, **kwargs))
        finally:
            tenant.users -= 1
            if tenant.users == 0:
                del state.tenants[tenant_id]

    def busy(self, tenant_id: str) -> int:
        """How many of ``tenant_id``'s calls are running or waiting in this loop."""
        state = self._loops.get(asyncio.get_running_loop())
        tenant = None if state is None else state.tenants.get(tenant_id)
        return 0 if tenant is None else tenant.users

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="hookline-schema")
        return self._executor
