"""``hookline serve --workers 2`` and ``hookline worker --processes 2``: every guarantee
holds across processes, a child that dies is started again, a signal stops them all."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from hookline.settings import Settings
from tests import processes
from tests.conftest import TenantKey
from tests.receiver import Receiver, wait_for

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(url, timeout=1)).status_code == 200
    except httpx.HTTPError:
        return False


async def test_two_api_and_two_worker_processes_keep_order_and_lose_nothing(
    api: httpx.AsyncClient,
    tenant: TenantKey,
    receiver: Receiver,
    settings: Settings,
    tmp_path: Path,
) -> None:
    await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c"})
    r = await api.post(
        "/v1/endpoints",
        headers=tenant.headers,
        json={"subscriber": "c", "url": receiver.url, "payload": "full", "ordering": "strict"},
    )
    assert r.status_code == 201, r.text
    port = processes.free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "supervised.log"
    served = processes.start(settings, "serve", "--port", str(port), "--workers", "2", log=log)
    working = processes.start(settings, "worker", "--processes", "2", log=log)
    try:
        await wait_for(lambda: _answers(f"{base}/healthz"), timeout=30, what="serve")
        await wait_for(lambda: len(_children(working.pid)) == 2, timeout=30, what="2 workers")
        api_pids = _children(served.pid)
        assert len(api_pids) == 2

        producers, per_producer = 16, 20
        async with httpx.AsyncClient(base_url=base, headers=tenant.headers) as client:

            async def produce(p: int) -> None:
                for n in range(per_producer):
                    body = {"id": f"p{p}-{n}", "type": "t", "data": {"p": p, "n": n}}
                    for _ in range(20):  # a producer's retry, as after any lost answer
                        try:
                            r = await client.post("/v1/events", json=body)
                        except httpx.TransportError:
                            continue  # its connection went to the process that died
                        # 409: the lost answer was for a committed event, taken now
                        assert r.status_code in (202, 409), r.text
                        break

            # one API process dies mid-run: the other answers, the supervisor restarts it
            async def kill_one() -> None:
                await wait_for(lambda: len(receiver.requests) > 0, what="a first delivery")
                os.kill(api_pids[0], signal.SIGKILL)

            await asyncio.gather(*(produce(p) for p in range(producers)), kill_one())
        total = producers * per_producer
        await wait_for(lambda: len(receiver.requests) >= total, timeout=60, what="every event")
        await wait_for(
            lambda: len(_children(served.pid)) == 2 and api_pids[0] not in _children(served.pid),
            timeout=30,
            what="the killed API process started again",
        )
    finally:
        codes = [processes.stop(served), processes.stop(working)]
    said = log.read_text()
    assert codes == [0, 0], said
    assert not _children(served.pid) and not _children(working.pid)

    seqs = [int(got.headers["hookline-sequence"]) for got in receiver.requests]
    assert seqs == list(range(1, total + 1)), "a gap, a reordering or a duplicate"
    seen: dict[int, list[int]] = defaultdict(list)
    for got in receiver.requests:
        data = json.loads(got.body)["data"]
        seen[data["p"]].append(data["n"])
    assert all(seen[p] == list(range(per_producer)) for p in range(producers))
    assert "exited with -9; starting it again" in said
