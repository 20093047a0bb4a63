"""The schema the migrations make, as text: committed as ``migrations/schema.sql``.

A reviewer reads one file to see the database as it is after every migration, and a test
builds a fresh database from the migrations and compares: a migration that changes the
schema without the snapshot (or an edit of an applied migration) fails it. Read from the
catalog, not from ``pg_dump``, so it needs no client tools and lists every object in a
fixed order. Regenerate with ``make schema``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg

from hookline.migrations import migrate, migrations_folder

HEADER = "-- The schema after every migration (hookline/schema_snapshot.py; `make schema`).\n"

_COLUMNS = """
SELECT c.relname AS table, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""

_CONSTRAINTS = """
SELECT c.relname AS table, k.conname AS name, pg_get_constraintdef(k.oid) AS definition
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND k.contype <> 'n'  -- NOT NULL: with the columns (PG 18 lists it)
ORDER BY c.relname, k.conname
"""

_INDEXES = """
SELECT tablename AS table, indexdef AS definition FROM pg_indexes
WHERE schemaname = 'public' ORDER BY tablename, indexname
"""

_FUNCTIONS = """
SELECT pg_get_functiondef(p.oid) AS definition
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public'
ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)
"""

_VIEWS = """
SELECT viewname AS name, definition FROM pg_views WHERE schemaname = 'public'
ORDER BY viewname
"""


async def snapshot(conn: asyncpg.Connection) -> str:
    """The schema of the database ``conn`` is connected to."""
    lines = [HEADER]
    tables: dict[str, list[str]] = {}
    for r in await conn.fetch(_COLUMNS):
        column = f"    {r['name']} {r['type']}"
        column += " NOT NULL" if r["not_null"] else ""
        column += f" DEFAULT {r['default']}" if r["default"] is not None else ""
        tables.setdefault(r["table"], []).append(column)
    for r in await conn.fetch(_CONSTRAINTS):
        tables.setdefault(r["table"], []).append(f"    CONSTRAINT {r['name']} {r['definition']}")
    indexes: dict[str, list[str]] = {}
    for r in await conn.fetch(_INDEXES):
        indexes.setdefault(r["table"], []).append(f"{r['definition']};")
    for table in sorted(tables):
        lines.append(f"\nTABLE {table} (\n" + ",\n".join(tables[table]) + "\n);\n")
        lines.extend(f"{index}\n" for index in indexes.get(table, []))
    for r in await conn.fetch(_VIEWS):
        lines.append(f"\nVIEW {r['name']} AS\n{r['definition'].strip()}\n")
    for r in await conn.fetch(_FUNCTIONS):
        lines.append(f"\n{r['definition'].strip()};\n")
    return "".join(lines)


def snapshot_file() -> Path:
    return migrations_folder() / "schema.sql"


async def _write(admin_url: str) -> None:
    name = "hookline_schema_snapshot"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(admin_url.rpartition("/")[0] + "/" + name)
        try:
            await migrate(conn)
            snapshot_file().write_text(await snapshot(conn))
        finally:
            await conn.close()
        await admin.execute(f'DROP DATABASE "{name}"')
    finally:
        await admin.close()


if __name__ == "__main__":
    # python -m hookline.schema_snapshot ADMIN_URL: a server where we may CREATE DATABASE
    asyncio.run(_write(sys.argv[1]))
    print(f"wrote {snapshot_file()}")
