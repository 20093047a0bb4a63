"""The Postgres boundary: the connection pool and named SQL queries read from ``.sql`` files.

A ``.sql`` file holds queries each introduced by ``-- name: <name>`` and a comment line saying
what it does and its positional parameters. Python never builds SQL from user values.
Driver errors that mean something to the domain are turned into :mod:`hookline.errors`
exceptions here, so handlers never see asyncpg's.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from hookline.settings import Settings

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)

Pool = asyncpg.Pool
#: one connection, of its own or lent by the pool
Connection = asyncpg.Connection | PoolConnectionProxy
#: anything a statement can run on
Executor = Pool | Connection


class Queries(Mapping[str, str]):
    """Named queries from every ``.sql`` file of a folder, loaded once."""

    def __init__(self, folder: Path) -> None:
        self._sql: dict[str, str] = {}
        for path in sorted(folder.glob("*.sql")):
            text = path.read_text()
            parts = _NAME.split(text)
            # parts: [preamble, name1, body1, name2, body2, ...]
            for name, body in zip(parts[1::2], parts[2::2], strict=True):
                if name in self._sql:
                    raise ValueError(f"query {name!r} is defined twice (in {path})")
                self._sql[name] = body.strip()

    def __getitem__(self, name: str) -> str:
        return self._sql[name]

    def __iter__(self) -> Any:
        return iter(self._sql)

    def __len__(self) -> int:
        return len(self._sql)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb comes back as text: delivery bodies splice it in without parsing it again. A str
    # parameter is taken as JSON text already encoded; anything else is encoded here.
    await conn.set_type_codec(
        "jsonb", encoder=_encode_json, decoder=str, schema="pg_catalog", format="text"
    )


async def _no_session_state(conn: asyncpg.Connection) -> None:
    """Nothing to reset when a connection returns to the pool.

    asyncpg's default runs ``RESET ALL; UNLISTEN *; ...`` on every release: a round trip
    that cost an eighth of an ingest request. hookline keeps no session state (no SET, no
    LISTEN, advisory locks always released explicitly); asyncpg still rolls back an open
    transaction before calling this.
    """


def _encode_json(value: object) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


@asynccontextmanager
async def open_pool(settings: Settings, *, size: int | None = None) -> AsyncIterator[Pool]:
    """A pool for the life of the block; every connection speaks jsonb as text."""
    settings.require("database_url")
    size = size or settings.db_pool_size
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=min(2, size),
        max_size=size,
        init=_init_connection,
        reset=_no_session_state,
        # a webhook platform's statements are few and hot: cache them all
        statement_cache_size=256,
    )
    try:
        yield pool
    finally:
        await pool.close()


async def connect(settings: Settings) -> asyncpg.Connection:
    """A connection of its own, outside the pool: for a job that holds a session-level
    lock for as long as it runs (the purge), without keeping a pooled one from requests."""
    settings.require("database_url")
    conn: asyncpg.Connection = await asyncpg.connect(settings.database_url)
    await _init_connection(conn)
    return conn


Row = dict[str, Any]

#: The kernel's named queries (immutable text, loaded once at import).
QUERIES = Queries(Path(__file__).resolve().parent / "sql")


def row(record: asyncpg.Record | None) -> Row | None:
    return None if record is None else dict(record)
