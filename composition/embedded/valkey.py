"""Valkey: served on a TCP port of 127.0.0.1, keeping nothing on disk (no RDB, no AOF)."""

from __future__ import annotations

import logging
import signal
import socket
import time
from pathlib import Path

from composition.embedded.accounts import Account, give_to
from composition.embedded.servers import HOST, Server, launch, stop_leftover

# One logger for the whole package: log lines keep the name they had as a single module.
logger = logging.getLogger("composition.embedded")

_VALKEY_START_TIMEOUT = 15.0
_VALKEY_STOP_TIMEOUT = 10.0


def start_valkey(binary: Path, folder: Path, account: Account | None) -> Server:
    began = time.monotonic()
    logger.info("starting embedded Valkey in %s", folder)
    give_to(account, folder, binary.parent)
    pid_file = folder / "valkey.pid"
    stop_leftover(pid_file, folder, "valkey-server", signal.SIGTERM, _VALKEY_STOP_TIMEOUT)
    config = {
        "bind": HOST,
        "protected-mode": "yes",
        "save": "",  # no RDB snapshots
        "appendonly": "no",  # no AOF: Valkey only wakes workers, it holds nothing that matters
        "dir": str(folder),
        "pidfile": str(pid_file),
        "daemonize": "no",
        "logfile": "",  # stdout, which goes to the log file
    }
    command = [str(binary)]
    for name, value in config.items():
        command += [f"--{name}", value]
    server = launch(
        "Valkey",
        command,
        log_path=folder / "valkey.log",
        account=account,
        stop_signal=signal.SIGTERM,
        stop_timeout=_VALKEY_STOP_TIMEOUT,
        ready=_valkey_ready,
        start_timeout=_VALKEY_START_TIMEOUT,
        port_args=lambda port: ["--port", str(port)],
    )
    logger.info("embedded Valkey ready on port %d (%.1fs)", server.port, time.monotonic() - began)
    return server


def _valkey_ready(port: int) -> bool:
    """Whether Valkey on ``port`` answers PING with PONG (it may accept before it serves)."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as connection:
            connection.sendall(b"*1\r\n$4\r\nPING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False
