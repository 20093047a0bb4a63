"""Migrations: applied once, in order, safely from several processes at once; and what
they make is the committed schema snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from hookline.db import Pool
from hookline.migrations import load_migrations, migrate
from hookline.schema_snapshot import snapshot, snapshot_file
from tests.conftest import Backing


async def test_concurrent_migrators_apply_each_file_once(backing: Backing) -> None:
    name = "hookline_migrate_race"
    admin = await asyncpg.connect(backing.admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conns = [await asyncpg.connect(backing.url_for(name)) for _ in range(4)]
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = [r for r in results if r]
        assert len(applied) == 1, "exactly one migrator does the work"
        assert applied[0] == [m.name for m in load_migrations()]
        again = await migrate(conns[0])
        assert again == []
        versions = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY 1")
        assert [v["version"] for v in versions] == [m.version for m in load_migrations()]
        for c in conns:
            await c.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def _scratch(backing: Backing, name: str) -> AsyncIterator[asyncpg.Connection]:
    admin = await asyncpg.connect(backing.admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(backing.url_for(name))
    try:
        yield conn
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_an_index_build_outside_the_transaction_that_failed_is_taken_up_again(
    backing: Backing, tmp_path: Path
) -> None:
    """The statements after "-- outside the transaction" run after the file's transaction,
    concurrently; one that failed leaves the file incomplete and its index invalid, and the
    next migrate drops that index and builds it again."""
    (tmp_path / "0001_pairs.sql").write_text(
        "CREATE TABLE pairs (x int);\n"
        "INSERT INTO pairs VALUES (1), (1);\n"
        "-- outside the transaction\n"
        "-- (a unique index the duplicate makes fail, halfway)\n"
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS pairs_x ON pairs (x);\n"
    )
    async with _scratch(backing, "hookline_migrate_outside") as conn:
        with pytest.raises(asyncpg.UniqueViolationError):
            await migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT complete FROM schema_migrations") is False
        index = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'pairs_x'::regclass"
        assert await conn.fetchval(index) is False  # left behind by the failed build
        assert await conn.fetchval("SELECT count(*) FROM pairs") == 2  # the file's part stays
        await conn.execute("DELETE FROM pairs WHERE ctid = (SELECT min(ctid) FROM pairs)")
        assert await migrate(conn, tmp_path) == ["0001_pairs"]
        assert await conn.fetchval(index) is True
        assert await conn.fetchval("SELECT complete FROM schema_migrations") is True
        assert await conn.fetchval("SELECT count(*) FROM pairs") == 1  # not run twice
        assert await migrate(conn, tmp_path) == []


async def test_a_statement_past_the_timeout_fails_the_file_and_leaves_nothing(
    backing: Backing, tmp_path: Path
) -> None:
    (tmp_path / "0001_slow.sql").write_text("CREATE TABLE t (x int);\nSELECT pg_sleep(5);\n")
    async with _scratch(backing, "hookline_migrate_timeout") as conn:
        with pytest.raises(asyncpg.QueryCanceledError):
            await migrate(conn, tmp_path, statement_timeout=0.2)
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
        assert await conn.fetchval("SELECT to_regclass('t') IS NULL")


async def test_ids_made_one_after_another_sort_in_that_order(pool: Pool) -> None:
    # within one millisecond they used to sort at random ("newest first" lists shuffled)
    made = [await pool.fetchval("SELECT hookline_id('evt')") for _ in range(300)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(len(i) == len("evt_") + 32 for i in made)
    # the same shape as before: 12 hex digits of milliseconds lead
    ms = int(made[0][4:16], 16)
    now_ms = await pool.fetchval("SELECT (extract(epoch FROM now()) * 1000)::bigint")
    assert abs(now_ms - ms) < 60_000


async def test_the_committed_schema_is_what_the_migrations_make(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)  # a clone of the migrated template
    try:
        made = await snapshot(conn)
    finally:
        await conn.close()
    committed = snapshot_file().read_text()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            made.splitlines(keepends=True),
            "migrations/schema.sql",
            "what the migrations make",
        )
    )
    assert made == committed, f"run `make schema` and commit the result:\n{diff[:4000]}"
