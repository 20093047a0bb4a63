"""The command line as a user runs it: real processes, real database."""

from __future__ import annotations

import json
import subprocess
import sys

import asyncpg
import pytest

from hookline.settings import Settings, SettingsError, load_settings
from tests.processes import ROOT, settings_env


def _run(
    settings: Settings | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = settings_env(settings) if settings else settings_env(load_settings(env={}))
    return subprocess.run(
        [sys.executable, "-m", "hookline", *args],
        cwd=ROOT,
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        input="",
    )


def test_tenant_create_json_prints_one_object(settings: Settings) -> None:
    done = _run(settings, "tenant", "create", "Acme Corp", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {"tenant", "api_key"}
    assert out["tenant"]["name"] == "Acme Corp" and out["tenant"]["id"].startswith("ten_")
    assert out["api_key"].startswith("hk_")


@pytest.mark.slow
async def test_user_create_stores_an_argon2_hash(settings: Settings) -> None:
    tenant = json.loads(_run(settings, "tenant", "create", "A", "--json").stdout)["tenant"]
    done = _run(
        settings,
        "user",
        "create",
        "--tenant",
        tenant["id"],
        "--email",
        "Ops@Example.com",
        "--password",
        "correct horse",
    )
    assert done.returncode == 0, done.stderr
    assert settings.database_url
    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await conn.fetchval(
            "SELECT password_hash FROM users WHERE email = $1", "ops@example.com"
        )
    finally:
        await conn.close()
    assert stored.startswith("$argon2")
    again = _run(
        settings,
        "user",
        "create",
        "--tenant",
        tenant["id"],
        "--email",
        "ops@example.com",
        "--password",
        "correct horse",
    )
    assert again.returncode == 1 and "exists already" in again.stderr


def test_missing_setting_stops_with_its_name() -> None:
    done = _run(None, "serve")
    assert done.returncode == 2
    assert "HOOKLINE_DATABASE_URL" in done.stderr


def test_invalid_setting_stops_with_its_name(settings: Settings) -> None:
    done = _run(settings, "migrate", env={"HOOKLINE_DELIVERY_TIMEOUT": "soon"})
    assert done.returncode == 2
    assert "HOOKLINE_DELIVERY_TIMEOUT" in done.stderr


def test_settings_parse_lists_and_refuse_bad_networks() -> None:
    s = load_settings(
        env={
            "HOOKLINE_RETRY_SCHEDULE": "0.5, 1,2",
            "HOOKLINE_ALLOWED_TARGET_NETWORKS": "127.0.0.0/8,::1/128",
        }
    )
    assert s.retry_schedule == [0.5, 1.0, 2.0]
    assert len(s.allowed_networks) == 2
    with pytest.raises(SettingsError, match="HOOKLINE_ALLOWED_TARGET_NETWORKS"):
        load_settings(env={"HOOKLINE_ALLOWED_TARGET_NETWORKS": "not-a-net"})
