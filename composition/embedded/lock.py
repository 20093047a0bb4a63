"""One data folder, one owner: the lock held on a data folder while its servers run."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DataDirLock:
    """An exclusive ``flock`` on ``data_dir/embedded.lock`` held while the servers run.

    Holding it also proves that a server still running from a previous run on this folder has
    lost its owner (killed hookline), so it may be stopped.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path) -> DataDirLock:
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
