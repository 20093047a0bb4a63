"""The README's first command: `hookline dev` on a machine with nothing configured."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from tests.processes import ROOT
from tests.receiver import Receiver, wait_for


async def test_dev_on_a_taken_port_says_so_before_starting_anything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env["PYTHONPATH"] = str(ROOT)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        dev = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "hookline", "dev", "--port", str(port)),
            *("--data-dir", str(tmp_path / "data")),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, said = await asyncio.wait_for(dev.communicate(), 30)
    assert dev.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in said.decode() and "--port" in said.decode()
    assert not (tmp_path / "data").exists()  # no embedded server was started


@pytest.mark.slow
async def test_dev_brings_up_everything_and_delivers_verifiable_webhooks(
    tmp_path: Path, receiver: Receiver
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env["PYTHONPATH"] = str(ROOT)
    log = (tmp_path / "dev.log").open("wb")  # what it said, should it fail
    dev = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hookline",
        "dev",
        "--port",
        "0",  # dev binds first, then starts its embedded servers, and shows the port
        "--data-dir",
        str(tmp_path / "data"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    log.close()  # the child has its own copy
    try:
        assert dev.stdout is not None
        banner = ""
        async with asyncio.timeout(60):
            while "Press Ctrl+C" not in banner:
                line = await dev.stdout.readline()
                assert line, f"hookline dev exited early:\n{banner}"
                banner += line.decode()
        key = re.search(r"api key\s+(hk_\S+)", banner)
        dashboard = re.search(r"dashboard\s+(http://127\.0\.0\.1:\d+)/", banner)
        assert key is not None and dashboard is not None and "login" in banner, banner
        auth = {"authorization": f"Bearer {key.group(1)}"}
        base = dashboard.group(1)
        async with httpx.AsyncClient(base_url=base) as api:
            try:
                await wait_for(lambda: _ready(api), what="the server to answer")
            except AssertionError as exc:
                said = (tmp_path / "dev.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{exc}; hookline dev said:\n{said}") from None
            r = await api.post(
                "/v1/endpoints",
                headers=auth,
                json={"subscriber": "demo-customer", "url": receiver.url},
            )
            assert r.status_code == 201, r.text
            secret = (await api.get(f"/v1/endpoints/{r.json()['id']}/secret", headers=auth)).json()[
                "key"
            ]
            r = await api.post(
                "/v1/events", headers=auth, json={"type": "order.created", "data": {"total": 42}}
            )
            assert r.status_code == 202, r.text
            await wait_for(lambda: len(receiver.requests) == 1, what="the webhook")
            got = receiver.requests[0]
            StandardWebhook(secret).verify(got.body, got.headers)
            SvixWebhook(secret).verify(got.body, got.headers)
            assert (await api.get("/", follow_redirects=True)).status_code == 200
    finally:
        if dev.returncode is None:
            dev.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            code = await dev.wait()
    assert code in (0, 130)  # 130: the conventional status after Ctrl+C
    # and the embedded Postgres and Valkey it started are gone with it
    assert _processes_mentioning(tmp_path) == []


def _processes_mentioning(folder: Path) -> list[Path]:
    return [p for p in Path("/proc").glob("[0-9]*") if str(folder) in _cmdline(p)]


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def _ready(api: httpx.AsyncClient) -> bool:
    try:
        return (await api.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False
