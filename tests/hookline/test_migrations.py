"""Migrations: applied once, in order, safely from several processes at once; and what
they make is the committed schema snapshot."""

from __future__ import annotations

import asyncio
import difflib

import asyncpg

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
