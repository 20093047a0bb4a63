"""HTTPS deliveries: certificates are verified, by name, while the socket goes to the
address the SSRF guard checked."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from hookline.db import Pool
from hookline.settings import Settings
from tests.api.test_endpoints import make_endpoint
from tests.conftest import TenantKey, running_worker
from tests.receiver import wait_for


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A private CA and a certificate it signed for `localhost` (made with openssl)."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=hookline test CA")  # fmt: skip
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return Pki(d / "ca.pem", d / "leaf.pem", d / "leaf.key")


@dataclass
class HttpsReceiver:
    port: int
    requests: list[bytes]


@pytest.fixture
async def https_receiver(pki: Pki) -> AsyncIterator[HttpsReceiver]:
    got = HttpsReceiver(0, [])

    async def handle(request: web.Request) -> web.Response:
        got.requests.append(await request.read())
        return web.Response(status=204)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)
    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    got.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield got
    await runner.cleanup()


async def _deliver(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    settings: Settings,
    pool: Pool,
    redis: Redis,
    url: str,
) -> dict[str, Any]:
    await make_endpoint(api, tenant, url)
    await api.post("/v1/events", headers=tenant.headers, json={"type": "t", "data": {}})

    async def first_attempt() -> dict[str, Any] | None:
        listed = (await api.get("/v1/deliveries", headers=tenant.headers)).json()["data"]
        one = (await api.get(f"/v1/deliveries/{listed[0]['id']}", headers=tenant.headers)).json()
        history: list[dict[str, Any]] = one["attempt_history"]
        return history[0] if history else None

    async def attempted() -> bool:
        return await first_attempt() is not None

    async with running_worker(settings, pool, redis):
        await wait_for(attempted, what="the first attempt")
    attempt = await first_attempt()
    assert attempt is not None
    return attempt


def _local(settings: Settings, **update: Any) -> Settings:
    # `localhost` resolves to ::1 too: every answer must be allowed, or none is used
    networks = [*settings.allowed_target_networks, "::1/128"]
    return settings.model_copy(update={"allowed_target_networks": networks, **update})


async def test_a_certificate_from_a_trusted_ca_for_the_name_is_accepted(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    settings: Settings,
    pool: Pool,
    redis: Redis,
    pki: Pki,
    https_receiver: HttpsReceiver,
) -> None:
    trusted = _local(settings, tls_ca_file=pki.ca)
    url = f"https://localhost:{https_receiver.port}/hook"
    attempt = await _deliver(api, tenant, trusted, pool, redis, url)
    assert attempt["status_code"] == 204, attempt["error"]
    assert len(https_receiver.requests) == 1


async def test_an_untrusted_certificate_is_refused_before_anything_is_sent(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    settings: Settings,
    pool: Pool,
    redis: Redis,
    https_receiver: HttpsReceiver,
) -> None:
    url = f"https://localhost:{https_receiver.port}/hook"
    attempt = await _deliver(api, tenant, _local(settings), pool, redis, url)
    assert attempt["status_code"] is None
    assert "certificate verify failed" in attempt["error"]
    assert https_receiver.requests == []


async def test_a_certificate_for_another_name_is_refused(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    settings: Settings,
    pool: Pool,
    redis: Redis,
    pki: Pki,
    https_receiver: HttpsReceiver,
) -> None:
    # the certificate names `localhost`; the URL names the address
    trusted = _local(settings, tls_ca_file=pki.ca)
    url = f"https://127.0.0.1:{https_receiver.port}/hook"
    attempt = await _deliver(api, tenant, trusted, pool, redis, url)
    assert attempt["status_code"] is None
    assert "certificate" in attempt["error"] and "127.0.0.1" in attempt["error"]
    assert https_receiver.requests == []


def test_an_unreadable_ca_file_stops_the_process_with_the_setting_named(
    tmp_path: Path,
) -> None:
    from hookline.settings import SettingsError, load_settings

    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(SettingsError, match="HOOKLINE_TLS_CA_FILE"):
        load_settings(env={"HOOKLINE_TLS_CA_FILE": str(bad)})
