"""Running a server: launching it on a free port, waiting until it serves, and stopping it.

Also stops a server that a killed earlier run left running on the same folder.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from composition.embedded.accounts import Account, own, run_as

# One logger for the whole package: log lines keep the name they had as a single module.
logger = logging.getLogger("composition.embedded")

HOST = "127.0.0.1"

_POLL_INTERVAL = 0.05
# Attempts at a fresh port when another process took the one picked before the server bound it.
_PORT_ATTEMPTS = 3
_PORT_IN_USE = "Address already in use"


@dataclass
class Server:
    """A server process in a session of its own, with its port and log."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    stop_signal: signal.Signals
    stop_timeout: float
    _stopping: threading.Lock = field(default_factory=threading.Lock)

    def stop(self) -> None:
        """Ask the server to stop, wait, and kill its process group if it takes too long."""
        with self._stopping:
            if self.process.poll() is not None:
                return
            logger.info("stopping embedded %s", self.name)
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "embedded %s did not stop within %.0fs, killing it (log: %s)",
                    self.name,
                    self.stop_timeout,
                    self.log_path,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            logger.info("embedded %s stopped", self.name)

    def settled(self, ready: Callable[[int], bool]) -> bool:
        """Whether the process has exited or ``ready(port)`` says it serves."""
        return self.process.poll() is not None or ready(self.port)

    def log_since(self, offset: int) -> str:
        """What the server logged after ``offset`` (the log's size before it started)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace").strip()
        except OSError:
            return ""


def launch(
    name: str,
    command: Sequence[str],
    *,
    log_path: Path,
    account: Account | None,
    stop_signal: signal.Signals,
    stop_timeout: float,
    ready: Callable[[int], bool],
    start_timeout: float,
    port_args: Callable[[int], list[str]],
) -> Server:
    """Start ``command`` + ``port_args(port)`` on a free port and wait until ``ready(port)``.

    The output goes to ``log_path`` (a pipe nobody reads would fill up and block the server).
    If the server exits before it is ready, its log of this start is in the error.
    """
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = _free_port()
        user, group, extra_groups = run_as(account)
        with log_path.open("ab") as log:
            own(log_path, account)
            offset = log.tell()
            # The command is built here from fixed options, paths and a port number.
            process = subprocess.Popen(  # noqa: S603
                [*command, *port_args(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to hookline, which stops the servers
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
        server = Server(name, process, port, log_path, stop_signal, stop_timeout)
        try:
            up = _poll(functools.partial(server.settled, ready), start_timeout)
        except BaseException:
            server.stop()
            raise
        if up and process.poll() is None:
            return server
        if not up:
            server.stop()
            raise RuntimeError(
                f"embedded {name} did not accept connections on port {port} within"
                f" {start_timeout:.0f}s; log {log_path}:\n{server.log_since(offset)}"
            )
        output = server.log_since(offset)
        if _PORT_IN_USE in output and attempt < _PORT_ATTEMPTS:
            logger.info("port %d was taken meanwhile, trying another one", port)
            continue
        raise RuntimeError(
            f"embedded {name} exited with code {process.returncode} while starting;"
            f" log {log_path}:\n{output}"
        )
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _poll(condition: Callable[[], bool], timeout: float) -> bool:
    """Check ``condition`` every few milliseconds until it holds (True) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


def stop_leftover(
    pid_file: Path, home: Path, program: str, stop_signal: signal.Signals, timeout: float
) -> None:
    """Stop a server that a killed earlier run left running on this folder (lock held).

    Postgres would otherwise refuse to start on the data folder it still holds.
    """
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return

    def gone() -> bool:
        return not _is_server(pid, program, home)

    if gone():
        return
    logger.warning("stopping embedded %s (pid %d) left running by an earlier run", program, pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, stop_signal)
    if not _poll(gone, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _poll(gone, 5.0)


def _is_server(pid: int, program: str, home: Path) -> bool:
    """Whether ``pid`` is a live ``program`` working in ``home`` (not a reused pid, no zombie).

    Both servers change into their folder, Postgres also names it in its command line. Where
    there is no /proc (macOS), only the command line is checked, which finds Postgres only.
    """
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").exists():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            return False
        return program in command and cwd == str(home)
    found = subprocess.run(  # noqa: S603
        ["/bin/ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return program in found.stdout and str(home) in found.stdout
