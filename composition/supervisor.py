"""The supervisor: ``hookline serve --workers N`` and ``hookline worker --processes N``.

One Python process runs on one core, so using a machine's cores means processes. The
supervisor starts N copies of the command as child processes (``python -m hookline ...``
with ``--workers 1`` / ``--processes 1``), restarts a child that dies (after a second, so a
child that cannot start does not spin), and on SIGTERM or SIGINT sends each child SIGTERM
and waits for every one to finish its shutdown. It holds no state and no connection of its
own; every guarantee is the children's, which already hold across processes (Postgres is
the truth, claims and lanes are leased there).

``serve`` binds its listening socket here, once, and the children inherit it (uvicorn's
``fd``): the kernel hands each new connection to one of them.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0  # seconds before a child that died is started again
_POLL = 0.2  # seconds between looks at the children


def listen(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket for children to inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def supervise(
    name: str,
    count: int,
    argv: Callable[[int], Sequence[str]],
    *,
    env: Callable[[int], dict[str, str]] | None = None,
    pass_fds: Sequence[int] = (),
) -> int:
    """Run ``count`` children (child ``i`` runs ``python -m hookline *argv(i)`` with
    ``env(i)``) until a signal stops them all; the exit code is 0 after a clean stop."""
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    children: dict[int, subprocess.Popen[bytes]] = {}
    due: dict[int, float] = {i: 0.0 for i in range(count)}  # children to (re)start, and when
    try:
        while not stopping:
            now = time.monotonic()
            for i, when in list(due.items()):
                if when <= now:
                    children[i] = subprocess.Popen(  # noqa: S603 (our own command)
                        [sys.executable, "-m", "hookline", *argv(i)],
                        env=env(i) if env else None,
                        pass_fds=pass_fds,
                    )
                    del due[i]
                    log.info("%s %d of %d started (pid %d)", name, i + 1, count, children[i].pid)
            for i, child in list(children.items()):
                code = child.poll()
                if code is not None and not stopping:
                    log.error(
                        "%s %d (pid %d) exited with %d; starting it again in %g s",
                        name,
                        i + 1,
                        child.pid,
                        code,
                        RESTART_DELAY,
                    )
                    del children[i]
                    due[i] = time.monotonic() + RESTART_DELAY
            time.sleep(_POLL)
        log.info("%s: stopping %d process(es)", name, len(children))
        for child in children.values():
            if child.poll() is None:
                # always SIGTERM: a Ctrl-C has reached the children already (they share the
                # terminal's process group), and a second SIGINT makes uvicorn quit at once
                # instead of finishing its requests
                child.send_signal(signal.SIGTERM)
        for child in children.values():
            child.wait()
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()
