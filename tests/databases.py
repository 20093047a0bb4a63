"""Scratch databases: clones of the migrated template, one per test, made ahead and reused.

Making a clone and dropping it costs ~100 ms of Postgres time, paid by every test: more
than most tests take. So a clone a test is done with is emptied and used again (~10 ms)
when nothing shows that the test changed more than rows: the same catalog as the template
(tables, columns, constraints, functions, the migrations applied, per-database settings)
and nobody else connected. Anything else, and the clone is dropped. Emptying deletes every
row of every table but ``schema_migrations`` (the only one the migrations fill) with
foreign keys off; sequences go on counting, which no test may care about.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

_counter = itertools.count()

# what a test could change beside rows; equal to the template's, the clone is reusable
FINGERPRINT = """
SELECT md5(concat_ws('|',
    (SELECT string_agg(c.oid::text || c.relname || c.relkind::text || c.relfilenode::text, ','
                       ORDER BY c.oid)
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),
    (SELECT string_agg(a.attrelid::text || a.attname || a.atttypid::text || a.attnotnull::text
                       || a.atthasdef::text, ',' ORDER BY a.attrelid, a.attnum)
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped),
    (SELECT string_agg(p.oid::text || p.proname || md5(p.prosrc), ',' ORDER BY p.oid)
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'public'),
    (SELECT string_agg(c.oid::text || c.conname || pg_get_constraintdef(c.oid), ','
                       ORDER BY c.oid)
       FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
      WHERE n.nspname = 'public'),
    (SELECT string_agg(t.oid::text || t.tgname || t.tgenabled::text, ',' ORDER BY t.oid)
       FROM pg_trigger t),
    (SELECT string_agg(version::text || name || complete::text, ',' ORDER BY version)
       FROM schema_migrations),
    (SELECT string_agg(s.setconfig::text, ',') FROM pg_db_role_setting s
      WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())),
    (SELECT count(*)::text FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid())
))
"""

TABLES = """
SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
 WHERE schemaname = 'public' AND tablename <> 'schema_migrations' ORDER BY 1
"""


class ScratchDatabases:
    """Clones of ``template`` on the server ``admin`` is connected to: a few kept ready,
    each given back after its test to be emptied (or dropped) in the background, all
    dropped before the session ends."""

    AHEAD = 2

    def __init__(self, admin: asyncpg.Pool, url_for: Callable[[str], str], template: str) -> None:
        self._admin = admin
        self._url_for = url_for
        self._template = template
        self._ready: asyncio.Queue[asyncio.Future[str]] = asyncio.Queue()
        self._clean: list[str] = []
        self._background: set[asyncio.Future[None]] = set()
        self._fingerprint = ""
        self._empty_all = ""

    async def start(self) -> None:
        conn = await asyncpg.connect(self._url_for(self._template))
        try:
            self._fingerprint = await conn.fetchval(FINGERPRINT)
            tables = [row[0] for row in await conn.fetch(TABLES)]
        finally:
            await conn.close()
        self._empty_all = "".join(f"DELETE FROM {table};" for table in tables)

    async def take(self) -> str:
        """A clone as the template left it (its creation's error, if it failed)."""
        while self._ready.qsize() + len(self._clean) < self.AHEAD + 1:
            self._ready.put_nowait(asyncio.ensure_future(self._create()))
        if self._clean:
            return self._clean.pop()
        return await self._ready.get_nowait()

    def give_back(self, name: str) -> None:
        self._in_background(self._reuse_or_drop(name))

    async def close(self) -> None:
        await asyncio.gather(*self._background, return_exceptions=True)
        while not self._ready.empty():
            with contextlib.suppress(Exception):
                self._clean.append(await self._ready.get_nowait())
        for name in self._clean:
            self._in_background(self._drop(name))
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _create(self) -> str:
        name = f"hookline_t_{os.getpid()}_{next(_counter)}"
        # FILE_COPY: copying the template's few MB of files costs ~70 ms where Postgres 15's
        # default, writing all of it to the WAL, costs ~170 ms (and its drop twice as long)
        await self._admin.execute(
            f'CREATE DATABASE "{name}" TEMPLATE "{self._template}" STRATEGY FILE_COPY'
        )
        return name

    async def _reuse_or_drop(self, name: str) -> None:
        try:
            conn = await asyncpg.connect(self._url_for(name))
            try:
                reusable = await conn.fetchval(FINGERPRINT) == self._fingerprint
                if reusable:
                    async with conn.transaction():
                        await conn.execute("SET LOCAL session_replication_role = replica")
                        await conn.execute(self._empty_all)
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            reusable = False
        if reusable:
            self._clean.append(name)
        else:
            await self._drop(name)

    async def _drop(self, name: str) -> None:
        await self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
