"""Real hookline processes for tests that kill, restart and race them, and private
Postgres and Valkey servers for tests that stop and restart those."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from composition.embedded.accounts import Account, account_for, run_as
from composition.embedded.binaries import postgres_bin_dir, valkey_binary
from composition.embedded.postgres import POSTGRES_USER, start_postgres
from composition.embedded.servers import HOST, Server
from composition.embedded.valkey import start_valkey
from hookline.migrations import migrate
from hookline.settings import Settings
from tests.receiver import wait_for

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on now (for a server the test starts next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process load exactly ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        env[f"HOOKLINE_{name.upper()}"] = str(value)
    env["PYTHONPATH"] = str(ROOT)
    return env


def start(settings: Settings, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """``hookline *args`` with ``settings``; its stderr goes to ``log`` when given (a pipe
    nobody reads fills up and blocks a process that logs a lot, say through an outage)."""
    sink = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "hookline", *args],
            env=settings_env(settings),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE if sink is None else sink,
        )
    finally:
        if sink is not None:
            sink.close()  # the child has its own copy


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout)


@contextmanager
def workers(settings: Settings, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` worker processes, stopped gracefully (then killed) at the end."""
    running = [start(settings, "worker") for _ in range(count)]
    try:
        yield running
    finally:
        for process in running:
            try:
                stop(process)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Fleet:
    """``hookline worker`` processes to kill and replace, each tagged with its own
    ``public_url`` (``http://w1.chaos.test``, ...): every thin payload's link carries it,
    so a receiver can tell which process sent a request."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self._settings = settings
        self._logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}  # started, not killed
        self.killed: list[str] = []
        self._started = 0

    def start(self) -> str:
        self._started += 1
        tag = f"w{self._started}"
        tagged = self._settings.model_copy(update={"public_url": f"http://{tag}.chaos.test"})
        self.running[tag] = start(tagged, "worker", log=self._logs / f"{tag}.log")
        return tag

    def kill(self, tag: str) -> None:
        process = self.running.pop(tag)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        self.killed.append(tag)

    def exited(self) -> list[str]:
        """Workers that ended without being killed (a crash the test should see)."""
        return [tag for tag, p in self.running.items() if p.poll() is not None]

    async def stop(self) -> None:
        """SIGTERM to every worker still running: each records what it has in flight."""
        for process in self.running.values():
            if process.poll() is None:
                process.terminate()
        for process in self.running.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(stop, process)
            if process.poll() is None:
                process.kill()
                process.wait()

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for log in sorted(self._logs.glob("w*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(out)


@dataclass
class PrivateServer:
    """An embedded Postgres or Valkey of one test alone, on a port of its own: stopping and
    restarting it touches no other test nor the machine's servers."""

    server: Server
    account: Account | None
    url: str

    async def stop(self) -> None:
        """Stop it as an operator would (Postgres: fast shutdown; Valkey: SIGTERM), in a
        thread: the test's loop keeps answering the workers meanwhile."""
        await asyncio.to_thread(self.server.stop)

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, as in a network partition."""
        self.server.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.server.process.send_signal(signal.SIGCONT)

    async def start_again(self) -> None:
        """Start the stopped server with its command line of before: same port, same data
        folder (Valkey keeps nothing, so it comes back empty)."""
        self.server = _relaunch(self.server, self.account)
        await wait_for(self.serves, timeout=60, what=f"{self.server.name} to serve again")

    async def serves(self) -> bool:
        try:
            if self.url.startswith("redis"):
                client = Redis.from_url(self.url, socket_connect_timeout=1)
                try:
                    return bool(await client.ping())
                finally:
                    await client.aclose()
            conn = await asyncpg.connect(self.url, timeout=1)
            await conn.close()
            return True
        except (OSError, RedisError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False


async def private_postgres(folder: Path) -> PrivateServer:
    """A new Postgres cluster in ``folder``, migrated, served on a free port."""
    account = account_for(folder, need_postgres=True)
    server = await asyncio.to_thread(
        start_postgres, postgres_bin_dir(), folder / "postgres", account
    )
    private = PrivateServer(
        server, account, f"postgresql://{POSTGRES_USER}@{HOST}:{server.port}/postgres"
    )
    conn = await asyncpg.connect(private.url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return private


async def private_valkey(folder: Path) -> PrivateServer:
    """An empty Valkey keeping nothing on disk, served on a free port."""
    account = account_for(folder, need_postgres=False)
    server = await asyncio.to_thread(start_valkey, valkey_binary(), folder / "valkey", account)
    return PrivateServer(server, account, f"redis://{HOST}:{server.port}/0")


def _relaunch(old: Server, account: Account | None) -> Server:
    assert old.process.poll() is not None, "stop it first"
    user, group, extra_groups = run_as(account)
    with old.log_path.open("ab") as log:
        process = subprocess.Popen(
            old.process.args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # as the first start: signals to the test stay ours
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
    return Server(old.name, process, old.port, old.log_path, old.stop_signal, old.stop_timeout)
