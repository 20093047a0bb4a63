"""Postgres: a cluster created with initdb once, served on a TCP port of 127.0.0.1."""

from __future__ import annotations

import logging
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

from composition.embedded.accounts import Account, give_to, own, run_as
from composition.embedded.servers import HOST, Server, launch, stop_leftover

# One logger for the whole package: log lines keep the name they had as a single module.
logger = logging.getLogger("composition.embedded")

# Superuser created by initdb; trust authentication on 127.0.0.1, so no password.
POSTGRES_USER = "postgres"

# Postgres may replay WAL after an unclean stop before it accepts connections.
_POSTGRES_START_TIMEOUT = 60.0
_POSTGRES_STOP_TIMEOUT = 30.0  # fast shutdown still writes a checkpoint


def start_postgres(bin_dir: Path, pgdata: Path, account: Account | None) -> Server:
    began = time.monotonic()
    logger.info("starting embedded Postgres in %s", pgdata)
    give_to(account, pgdata, bin_dir)
    if (pgdata / "PG_VERSION").exists():
        pid_file = pgdata / "postmaster.pid"
        stop_leftover(pid_file, pgdata, "postgres", signal.SIGINT, _POSTGRES_STOP_TIMEOUT)
    else:
        _initdb(bin_dir, pgdata, account)
    log_dir = pgdata / "log"
    log_dir.mkdir(mode=0o700, exist_ok=True)
    own(log_dir, account)
    command = [str(bin_dir / "postgres"), "-D", str(pgdata)]
    settings = {
        "listen_addresses": HOST,
        "unix_socket_directories": "",  # TCP only: no socket path length or permission trouble
        "fsync": "on",
        "max_connections": "200",
    }
    for name, value in settings.items():
        command += ["-c", f"{name}={value}"]
    server = launch(
        "Postgres",
        command,
        log_path=log_dir / "embedded.log",
        account=account,
        stop_signal=signal.SIGINT,  # fast shutdown: end sessions, checkpoint, exit
        stop_timeout=_POSTGRES_STOP_TIMEOUT,
        ready=_postgres_ready,
        start_timeout=_POSTGRES_START_TIMEOUT,
        port_args=lambda port: ["-c", f"port={port}"],
    )
    logger.info("embedded Postgres ready on port %d (%.1fs)", server.port, time.monotonic() - began)
    return server


def _initdb(bin_dir: Path, pgdata: Path, account: Account | None) -> None:
    logger.info("creating a new Postgres cluster in %s", pgdata)
    command = [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", POSTGRES_USER]
    command += ["--auth=trust", "--encoding=UTF8", "--locale=C"]
    # Unicode-aware and the same everywhere: no dependence on the machine's libc locales.
    command += ["--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
    user, group, extra_groups = run_as(account)
    done = subprocess.run(  # noqa: S603 - fixed options and paths
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        user=user,
        group=group,
        extra_groups=extra_groups,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"initdb failed with code {done.returncode}:\n{done.stdout}{done.stderr}".strip()
        )


def _postgres_ready(port: int) -> bool:
    """Whether a trust-authenticated session on ``port`` gets to ReadyForQuery.

    A bare TCP connect is not enough: during start-up and recovery Postgres accepts the
    connection and then refuses the session ("the database system is starting up").
    """
    parameters = f"user\0{POSTGRES_USER}\0database\0postgres\0\0".encode()
    startup = struct.pack("!ii", 8 + len(parameters), 196608) + parameters  # protocol 3.0
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as connection:
            connection.sendall(startup)
            while True:
                header = _recv_exactly(connection, 5)
                kind, length = header[:1], struct.unpack("!i", header[1:])[0]
                _recv_exactly(connection, length - 4)
                if kind == b"Z":  # ReadyForQuery
                    connection.sendall(b"X\0\0\0\4")  # Terminate: leave without a log line
                    return True
                if kind not in (b"R", b"S", b"K", b"N"):  # auth ok, parameters, key, notice
                    return False
    except OSError:
        return False


def _recv_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("server closed the connection")
        data += chunk
    return data
