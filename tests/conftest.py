"""Test fixtures against real services.

Postgres and Redis come from ``HOOKLINE_TEST_DATABASE_URL`` / ``HOOKLINE_TEST_REDIS_URL``
when set (CI points them at the machine's running servers), else embedded ones are started
for the session. Migrations build a template database once; each test gets a clone of it
as the migrations left it (so every run also tests the migrations; see tests.databases)
and its own Redis namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from composition.web import build_app
from hookline.db import Pool, open_pool
from hookline.metrics import Metrics
from hookline.migrations import migrate
from hookline.settings import Settings, load_settings
from hookline.tenants import create_tenant
from tests.databases import ScratchDatabases
from tests.receiver import Receiver


@dataclass(frozen=True)
class Backing:
    admin_url: str  # a database on the server we may CREATE DATABASE from
    redis_url: str
    template: str

    def url_for(self, database: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{database}"


@pytest.fixture(scope="session")
def backing_urls() -> Iterator[tuple[str, str]]:
    pg = os.environ.get("HOOKLINE_TEST_DATABASE_URL", "")
    redis = os.environ.get("HOOKLINE_TEST_REDIS_URL", "")
    if pg and redis:
        yield pg, redis
        return
    from composition.embedded import start_embedded

    folder = Path(tempfile.mkdtemp(prefix="hookline-test-"))
    services, stop = start_embedded(folder, need_postgres=not pg, need_redis=not redis)
    try:
        yield pg or services.database_url, redis or services.redis_url
    finally:
        stop()


@pytest.fixture(scope="session")
async def backing(backing_urls: tuple[str, str]) -> AsyncIterator[Backing]:
    admin_url, redis_url = backing_urls
    template = f"hookline_tmpl_{os.getpid()}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{template}"')
        await conn.execute(f'CREATE DATABASE "{template}"')
        base = Backing(admin_url, redis_url, template)
        tconn = await asyncpg.connect(base.url_for(template))
        try:
            await migrate(tconn)
        finally:
            await tconn.close()
        yield base
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{template}"')
        await conn.close()


@pytest.fixture(scope="session")
async def scratch(backing: Backing) -> AsyncIterator[ScratchDatabases]:
    async with asyncpg.create_pool(backing.admin_url, min_size=1, max_size=3) as admin:
        databases = ScratchDatabases(admin, backing.url_for, backing.template)
        await databases.start()
        try:
            yield databases
        finally:
            await databases.close()


@pytest.fixture
async def database_url(backing: Backing, scratch: ScratchDatabases) -> AsyncIterator[str]:
    name = await scratch.take()
    try:
        yield backing.url_for(name)
    finally:
        scratch.give_back(name)


def make_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "secret_key": "test-secret-key-" + "x" * 32,
        "allowed_target_networks": ["127.0.0.0/8"],
        "namespace": f"hookline-test-{secrets.token_hex(4)}",
        "retry_schedule": [0.2, 0.4],
        "delivery_timeout": 5.0,
        "lease_margin": 1.0,
        "sweep_interval": 0.2,
        "public_url": "http://127.0.0.1:8000",
    }
    values.update(overrides)
    return load_settings(env={}, **values)


@pytest.fixture
def settings(database_url: str, backing: Backing) -> Settings:
    return make_settings(database_url, backing.redis_url)


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    async with open_pool(settings, size=4) as pool:
        yield pool


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    assert settings.redis_url
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def api(settings: Settings, pool: Pool, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the whole app, in process (no auth header)."""
    app = build_app(settings, pool, redis)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as client:
        yield client


@dataclass(frozen=True)
class TenantKey:
    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}


@pytest.fixture
async def tenant(pool: Pool) -> TenantKey:
    created, key = await create_tenant(pool, "Acme")
    return TenantKey(created.id, key)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, pool: Pool, redis: Redis, metrics: Metrics | None = None
) -> AsyncIterator[None]:
    """A delivery worker in the test's event loop for the life of the block."""
    from delivery.transport import create_transport
    from delivery.worker import run_worker

    stop = asyncio.Event()
    transport = create_transport(settings)

    async def until() -> None:
        await stop.wait()

    task = asyncio.create_task(
        run_worker(settings, pool, redis, transport, metrics or Metrics(), until=until)
    )
    try:
        yield
    finally:
        stop.set()
        await task
        await transport.aclose()


@pytest.fixture
async def worker(settings: Settings, pool: Pool, redis: Redis) -> AsyncIterator[None]:
    """A delivery worker running in the test's event loop until the test ends."""
    async with running_worker(settings, pool, redis):
        yield


async def stored_secrets(pool: Pool, settings: Settings, endpoint_id: str) -> list[dict[str, Any]]:
    """An endpoint's signing secrets as stored, oldest first, each also opened (``secret``;
    ``sealed`` is the stored text), with ``created_at`` and ``expires_at``."""
    from hookline.vault import Vault

    vault = Vault.from_settings(settings)
    rows = await pool.fetch(
        "SELECT s.secret, s.created_at, s.expires_at, e.tenant_id FROM endpoint_secrets s"
        " JOIN endpoints e ON e.id = s.endpoint_id WHERE s.endpoint_id = $1"
        " ORDER BY s.created_at",
        endpoint_id,
    )
    return [
        {
            "secret": vault.open_secret(r["secret"], r["tenant_id"]),
            "sealed": r["secret"],
            "created_at": r["created_at"],
            "expires_at": r["expires_at"],
        }
        for r in rows
    ]


async def expire_secret(pool: Pool, settings: Settings, endpoint_id: str, secret: str) -> None:
    """End the grace period of one of an endpoint's secrets now."""
    for s in await stored_secrets(pool, settings, endpoint_id):
        if s["secret"] == secret:
            await pool.execute(
                "UPDATE endpoint_secrets SET expires_at = now()"
                " WHERE endpoint_id = $1 AND created_at = $2",
                endpoint_id,
                s["created_at"],
            )
            return
    raise AssertionError("no such secret")
