"""Forward-only migrations: numbered ``.sql`` files applied once each, in order.

Several processes may migrate at once (every replica runs ``hookline migrate`` at start):
an advisory lock makes the others wait and then find nothing left to do. Each file
runs in its own transaction with the tracking row, so a failure leaves no half-applied file.
In it, no statement waits more than 10 s for a lock (it fails instead of queueing every
query behind it) or runs longer than the statement timeout.

What follows a line ``-- outside the transaction`` in a file runs after that transaction
commits, a statement at a time: ``CREATE INDEX CONCURRENTLY`` (an index on a table that may
be big, built without blocking its writes, and with no statement timeout) and the like.
Each such statement must be safe to run again: the file is marked complete only when all
have run, and an incomplete one is taken up again by the next ``migrate``. An index a
failed concurrent build left invalid is dropped before it is built again.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

# any constant distinct from other applications' advisory locks on the same database
_LOCK_ID = 0x686F6F6B6C696E65  # "hookline"
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_OUTSIDE = re.compile(r"^-- outside the transaction[ \t]*$", re.MULTILINE)
# a statement of the outside part ends with ';' at the end of a line
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)
_CONCURRENT_INDEX = re.compile(
    r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.IGNORECASE
)
LOCK_TIMEOUT = "10s"
_LOCK_POLL = 0.2  # seconds between tries for the lock another migrator holds


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str  # run in the file's transaction
    outside: tuple[str, ...] = ()  # run after it, one statement at a time


def _code(text: str) -> str:
    """``text`` without its comment lines and blank lines."""
    return "\n".join(
        line for line in text.splitlines() if line.strip() and not line.strip().startswith("--")
    ).strip()


def _parse(version: int, name: str, text: str) -> Migration:
    inside, *rest = _OUTSIDE.split(text, maxsplit=1)
    outside: list[str] = []
    for part in _STATEMENT_END.split(rest[0] if rest else ""):
        statement = _code(part)
        if statement:
            outside.append(statement)
    return Migration(version, name, inside, tuple(outside))


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
            found.append(_parse(int(match.group(1)), path.stem, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a number in {folder}")
    return found


async def migrate(
    conn: asyncpg.Connection, folder: Path | None = None, *, statement_timeout: float = 600
) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date).
    ``statement_timeout`` (seconds, 0: none) bounds each statement inside a file's
    transaction."""
    pending = load_migrations(folder)
    applied: list[str] = []
    await _take_lock(conn)
    try:
        # inside the lock: two first-time CREATE TABLE IF NOT EXISTS can still collide
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now());"
            # false while the statements outside the file's transaction have not all run
            "ALTER TABLE schema_migrations"
            " ADD COLUMN IF NOT EXISTS complete boolean NOT NULL DEFAULT true"
        )
        done = {
            r["version"]: r["complete"]
            for r in await conn.fetch("SELECT version, complete FROM schema_migrations")
        }
        for migration in pending:
            if done.get(migration.version) is True:
                continue
            if migration.version not in done:
                log.info("applying migration %s", migration.name)
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    await conn.execute(
                        f"SET LOCAL statement_timeout = '{int(statement_timeout * 1000)}ms'"
                    )
                    if _code(migration.sql):  # an empty query (only comments) trips asyncpg
                        await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, complete)"
                        " VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        not migration.outside,
                    )
            if migration.outside:
                await _run_outside(conn, migration)
            applied.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied


async def _take_lock(conn: asyncpg.Connection) -> None:
    """The migrators' lock, waited for between tries rather than inside a statement: a
    statement waiting on a lock holds a snapshot, and a concurrent index build (of the
    migrator that has the lock) waits for every snapshot older than its own to end."""
    while True:
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_ID):
            return
        await asyncio.sleep(_LOCK_POLL)  # the lock is Postgres's: nothing here to wait on


async def _run_outside(conn: asyncpg.Connection, migration: Migration) -> None:
    # a concurrent build blocks no writes and may take long on a big table: no timeout
    await conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'; SET statement_timeout = 0")
    try:
        for statement in migration.outside:
            index = _CONCURRENT_INDEX.search(statement)
            if index is not None:
                await _drop_if_invalid(conn, index.group(1))
            log.info("migration %s: %s", migration.name, statement.splitlines()[0])
            await conn.execute(statement)
    finally:
        await conn.execute("RESET lock_timeout; RESET statement_timeout")
    await conn.execute(
        "UPDATE schema_migrations SET complete = true WHERE version = $1", migration.version
    )


async def _drop_if_invalid(conn: asyncpg.Connection, name: str) -> None:
    """A concurrent build that failed (or was killed) leaves its index behind, invalid:
    IF NOT EXISTS would then keep it as it is."""
    invalid = await conn.fetchval(
        "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace",
        name,
    )
    if invalid:
        log.warning("dropping index %s, left invalid by a build that did not finish", name)
        await conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
