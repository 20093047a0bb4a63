"""Forward-only migrations: numbered ``.sql`` files applied once each, in order.

Several processes may migrate at once (every replica runs ``hookline migrate`` at start):
a blocking advisory lock makes the others wait and then find nothing left to do. Each file
runs in its own transaction with the tracking row, so a failure leaves no half-applied file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

# any constant distinct from other applications' advisory locks on the same database
_LOCK_ID = 0x686F6F6B6C696E65  # "hookline"
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_folder() -> Path:
    """The repository's ``migrations/`` in a checkout, or the copy packed into the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "migrations", here / "_migrations"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no migrations folder next to the hookline package")


def load_migrations(folder: Path | None = None) -> list[Migration]:
    folder = folder or migrations_folder()
    found = []
    for path in sorted(folder.iterdir()):
        match = _FILE.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), path.stem, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a number in {folder}")
    return found


async def migrate(conn: asyncpg.Connection, folder: Path | None = None) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    pending = load_migrations(folder)
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        # inside the lock: two first-time CREATE TABLE IF NOT EXISTS can still collide
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in pending:
            if migration.version in done:
                continue
            log.info("applying migration %s", migration.name)
            async with conn.transaction():
                # never queue behind a long-running query holding a lock for minutes
                await conn.execute("SET LOCAL lock_timeout = '10s'")
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied
