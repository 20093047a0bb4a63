"""The HTTP edge of ``hookline serve`` (hookline/server.py), against a real process and
real sockets: slowloris and connection floods leave it answering with its descriptors
bounded, slow heads and idle keep-alives are closed, requests past the limit get a 503."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hookline.server import FD_MARGIN
from hookline.settings import Settings
from tests import processes
from tests.conftest import TenantKey
from tests.receiver import wait_for

pytestmark = pytest.mark.slow

CAP = 200  # http_max_connections
MAX_REQUESTS = 2
HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 3.0  # longer than the slow but whole body of a test below
KEEPALIVE_TIMEOUT = 0.5  # shorter than the header timeout, to tell the two apart
UVICORN_BACKLOG = 2048  # uvicorn's default listen backlog, which hookline keeps
INHERITED_SOFT_LIMIT = 512  # the soft RLIMIT_NOFILE `hookline serve` starts with here
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: hookline.test\r\nX-Slow: "


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def soft_fd_limit(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
        raise AssertionError("no open files limit in /proc")

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@contextlib.contextmanager
def _soft_fd_limit(soft: int) -> Iterator[None]:
    """This process's soft open files limit at ``soft`` (children inherit it)."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (before, hard))


def _tail(log: Path) -> str:
    return "hookline serve exited:\n" + log.read_text(errors="replace")[-3000:]


@contextlib.asynccontextmanager
async def _serving(settings: Settings, log: Path, **limits: float) -> AsyncIterator[Serve]:
    """``hookline serve`` with ``limits`` (http_* settings), started with a low soft fd
    limit, answering."""
    port = processes.free_port()
    with _soft_fd_limit(INHERITED_SOFT_LIMIT):
        process = processes.start(
            settings.model_copy(update=limits), "serve", "--port", str(port), log=log
        )
    running = Serve(process, port, log)

    async def answers() -> bool:
        assert process.poll() is None, _tail(log)
        try:
            return (await _get(running))[0] == 200
        except OSError:
            return False

    try:
        await wait_for(answers, timeout=30, what="hookline serve to answer")
        yield running
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            processes.stop(process, signal.SIGTERM, timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
async def serve(settings: Settings, tmp_path: Path) -> AsyncIterator[Serve]:
    async with _serving(
        settings,
        tmp_path / "serve.log",
        http_max_connections=CAP,
        http_max_requests=MAX_REQUESTS,
        http_header_timeout=HEADER_TIMEOUT,
        http_body_timeout=BODY_TIMEOUT,
        http_keepalive_timeout=KEEPALIVE_TIMEOUT,
    ) as running:
        yield running


# -- raw HTTP/1.1 over asyncio streams ------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def _get(serve: Serve, path: str = "/healthz") -> tuple[int, float]:
    """GET ``path`` on a new connection within a second: the status and the seconds taken."""
    started = time.monotonic()
    async with asyncio.timeout(1.0):
        reader, writer = await serve.connect()
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: hookline.test\r\n\r\n".encode())
            status, _, _ = await _read_response(reader)
        finally:
            writer.close()
    return status, time.monotonic() - started


async def _until_closed(reader: asyncio.StreamReader, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (EOF or reset)."""
    got = b""
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(4096):
                got += chunk
    return got


_EVENT = b'{"type": "edge.test", "data": {"n": 1}}'


async def _start_post(
    serve: Serve, tenant: TenantKey
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """POST /v1/events with its whole head and none of its body, once the handler is
    reading the body (it asked for it: 100 Continue)."""
    reader, writer = await serve.connect()
    writer.write(
        b"POST /v1/events HTTP/1.1\r\nHost: hookline.test\r\n"
        b"Authorization: Bearer " + tenant.key.encode() + b"\r\n"
        b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
        b"Content-Length: " + str(len(_EVENT)).encode() + b"\r\n\r\n"
    )
    async with asyncio.timeout(5):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    return reader, writer


# -- a slowloris in a process of its own, as an attacker would be ----------------------------

_SLOWLORIS = """
import asyncio, json, signal, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
partial = bytes.fromhex(sys.argv[3])
closed, lifetimes = 0, []

async def attacker(stop):
    global closed
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            continue
        started = time.monotonic()
        writer.write(partial)
        eof = asyncio.ensure_future(reader.read())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({eof, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if eof.done():
            closed += 1
            lifetimes.append(time.monotonic() - started)
        eof.cancel()
        stopping.cancel()
        writer.close()

async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await asyncio.gather(*(attacker(stop) for _ in range(count)))
    lifetimes.sort()
    print(json.dumps({"closed": closed, "median_lifetime": lifetimes[len(lifetimes) // 2]}))

asyncio.run(main())
"""


@contextlib.contextmanager
def _slowloris(serve: Serve, count: int) -> Iterator[dict[str, float]]:
    """``count`` connections that each send part of a request head and then nothing,
    each opened again as soon as the server closes it; the totals are filled in at exit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with _soft_fd_limit(hard):  # the attacker needs descriptors too
        process = subprocess.Popen(
            [sys.executable, "-c", _SLOWLORIS, str(serve.port), str(count), PARTIAL.hex()],
            stdout=subprocess.PIPE,
        )
    totals: dict[str, float] = {}
    try:
        yield totals
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
        totals.update(json.loads(out))


# -- the tests ------------------------------------------------------------------------------


async def test_slowloris_flood_leaves_healthz_answering_and_descriptors_bounded(
    serve: Serve,
) -> None:
    # raised at start from the inherited 512: the cap, a full accept queue and the margin
    assert serve.soft_fd_limit() == CAP + UVICORN_BACKLOG + FD_MARGIN
    idle = serve.descriptors()
    full = idle + CAP  # every connection slot taken
    samples: list[int] = []
    latencies: list[float] = []
    with _slowloris(serve, 1500) as attack:
        await wait_for(lambda: serve.descriptors() >= full - 5, what="the flood to fill the cap")
        # 20 tries over twice the header timeout: every partial head open at the start has
        # been closed meanwhile, and the flood has replaced it
        for _ in range(20):
            status, took = await _get(serve)
            assert status == 200
            latencies.append(took)
            samples.append(serve.descriptors())
            await asyncio.sleep(2 * HEADER_TIMEOUT / 20)  # a pace, not a synchronisation
            samples.append(serve.descriptors())
    print(
        f"\nfds idle {idle}, during the flood {min(samples)}..{max(samples)}; "
        f"{attack['closed']:.0f} attack connections closed by the server, median after "
        f"{attack['median_lifetime'] * 1000:.0f} ms; /healthz in "
        f"{min(latencies) * 1000:.1f}..{max(latencies) * 1000:.1f} ms"
    )
    assert min(samples) >= full - 10, "the flood held every slot"
    assert max(samples) <= full + 10, "descriptors bounded at the cap"
    assert attack["closed"] > 2 * 1500, "newcomers closed the oldest partial heads"

    # with no newcomer to make room for, a partial head is closed after the header timeout
    reader, writer = await serve.connect()
    writer.write(PARTIAL)
    started = time.monotonic()
    got = await _until_closed(reader)
    lived = time.monotonic() - started
    writer.close()
    print(f"a lone partial head was closed after {lived:.2f} s")
    assert got.startswith(b"HTTP/1.1 408 ")
    assert HEADER_TIMEOUT - 0.05 <= lived <= HEADER_TIMEOUT + 0.5
    await wait_for(lambda: serve.descriptors() <= idle + 2, what="every connection closed")


async def test_a_slow_but_whole_head_is_served(serve: Serve) -> None:
    reader, writer = await serve.connect()
    head = b"GET /healthz HTTP/1.1\r\nHost: hookline.test\r\nX-One: 1\r\nX-Two: 2\r\n\r\n"
    started = time.monotonic()
    for piece in range(0, len(head), len(head) // 5 + 1):
        writer.write(head[piece : piece + len(head) // 5 + 1])
        await asyncio.sleep(0.2)  # the client is slow on purpose: 1 s for the whole head
    status, _, body = await _read_response(reader)
    writer.close()
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert 0.9 < time.monotonic() - started < HEADER_TIMEOUT


async def test_a_request_in_progress_is_not_evicted_by_newcomers(
    serve: Serve, tenant: TenantKey
) -> None:
    reader, writer = await _start_post(serve, tenant)
    started = time.monotonic()
    writer.write(_EVENT[:5])
    # twice the cap of newcomers, each with a partial head: the oldest waiting ones go
    newcomers = await asyncio.gather(*(serve.connect() for _ in range(2 * CAP)))
    for _, w in newcomers:
        w.write(PARTIAL)
    closed = await asyncio.gather(*(_until_closed(r) for r, _ in newcomers[:CAP]))
    assert closed == [b""] * CAP, "the first newcomers were evicted, without a word"
    # the body trickles on past the header timeout: a head was complete, so it is no slowloris
    for byte in _EVENT[5:-1]:
        writer.write(bytes([byte]))
        await asyncio.sleep(1.3 * HEADER_TIMEOUT / len(_EVENT))  # a slow body, on purpose
    writer.write(_EVENT[-1:])
    status, _, body = await _read_response(reader)
    writer.close()
    assert time.monotonic() - started > HEADER_TIMEOUT
    assert status == 202, body
    for _, w in newcomers:
        w.close()


async def test_idle_keepalive_closed_and_head_timed_from_the_last_response(
    serve: Serve,
) -> None:
    reader, writer = await serve.connect()
    request = b"GET /healthz HTTP/1.1\r\nHost: hookline.test\r\n\r\n"
    for _ in range(2):  # kept alive between requests
        writer.write(request)
        assert (await _read_response(reader))[0] == 200
    answered = time.monotonic()
    assert await _until_closed(reader) == b""
    idle = time.monotonic() - answered
    writer.close()

    # a partial head after a response: the header timeout counts from that response
    reader, writer = await serve.connect()
    writer.write(request)
    assert (await _read_response(reader))[0] == 200
    answered = time.monotonic()
    writer.write(PARTIAL)
    got = await _until_closed(reader)
    slow = time.monotonic() - answered
    writer.close()
    print(f"\nidle keep-alive closed after {idle:.2f} s, a slow next head after {slow:.2f} s")
    assert KEEPALIVE_TIMEOUT - 0.05 <= idle <= KEEPALIVE_TIMEOUT + 0.4
    assert got.startswith(b"HTTP/1.1 408 ")
    assert HEADER_TIMEOUT - 0.05 <= slow <= HEADER_TIMEOUT + 0.5


async def test_requests_past_the_limit_get_503_with_retry_after(
    serve: Serve, tenant: TenantKey
) -> None:
    in_progress = [await _start_post(serve, tenant) for _ in range(MAX_REQUESTS)]
    reader, writer = await serve.connect()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: hookline.test\r\n\r\n")
    status, headers, body = await _read_response(reader)
    assert status == 503 and headers["retry-after"] == "1", body
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 503
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: hookline.test\r\n\r\n")  # still open
    assert (await _read_response(reader))[0] == 503
    writer.close()
    for post_reader, post_writer in in_progress:
        post_writer.write(_EVENT)
        assert (await _read_response(post_reader))[0] == 202
        post_writer.close()
    assert (await _get(serve))[0] == 200


async def test_a_body_that_stops_coming_frees_its_request_slot(
    serve: Serve, tenant: TenantKey
) -> None:
    stalled = [await _start_post(serve, tenant) for _ in range(MAX_REQUESTS)]
    started = time.monotonic()
    for _, writer in stalled:
        writer.write(_EVENT[:5])  # and then nothing: the handler waits on the body
    assert (await _get(serve))[0] == 503  # both request slots are held
    answers = await asyncio.gather(*(_until_closed(r) for r, _ in stalled))
    took = time.monotonic() - started
    for _, writer in stalled:
        writer.close()
    print(f"\nstalled bodies cut off after {took:.2f} s")
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers)
    assert BODY_TIMEOUT - 0.05 <= took <= BODY_TIMEOUT + 1.0

    async def slots_free() -> bool:
        return (await _get(serve))[0] == 200

    await wait_for(slots_free, timeout=5, what="the request slots to be given back")


async def test_when_every_connection_is_busy_the_newcomer_is_closed(
    settings: Settings, tenant: TenantKey, tmp_path: Path
) -> None:
    cap = 16  # the least http_max_connections may be
    async with _serving(
        settings, tmp_path / "serve.log", http_max_connections=cap, http_max_requests=2 * cap
    ) as serve:
        in_progress = [await _start_post(serve, tenant) for _ in range(cap)]
        reader, writer = await serve.connect()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: hookline.test\r\n\r\n")
        started = time.monotonic()
        assert await _until_closed(reader) == b"", "closed at once, unanswered"
        assert time.monotonic() - started < 1  # not the header timeout (10 s)
        writer.close()
        for post_reader, post_writer in in_progress:  # each still gets its answer
            post_writer.write(_EVENT)
            assert (await _read_response(post_reader))[0] == 202
            post_writer.close()
        assert (await _get(serve))[0] == 200


_FIT = """
import json, logging, resource
from hookline.server import Limits, fit_descriptors
logging.basicConfig(level=logging.WARNING)
fitted = fit_descriptors(Limits(4096, 1024, 10.0, 60.0, 5.0, 2048))
print(json.dumps([fitted.max_connections, fitted.backlog, *resource.getrlimit(7)]))
"""


@pytest.mark.parametrize("low_hard_limit", [False, True])
def test_the_open_files_limit_is_raised_or_the_cap_lowered(low_hard_limit: bool) -> None:
    """Defaults (4096 connections, uvicorn's backlog) from a soft limit of 256."""
    soft, hard = 256, 1024 if low_hard_limit else resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if not low_hard_limit and hard < 4096 + 2048 + FD_MARGIN:
        pytest.skip(f"the hard open files limit here is only {hard}")

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    done = subprocess.run(
        [sys.executable, "-c", _FIT],
        preexec_fn=limited,
        capture_output=True,
        text=True,
        env=processes.settings_env(Settings()) | {"PYTHONPATH": str(processes.ROOT)},
        check=True,
    )
    cap, backlog, new_soft, new_hard = json.loads(done.stdout)
    assert new_hard == hard
    if not low_hard_limit:
        assert (cap, backlog, new_soft) == (4096, 2048, 4096 + 2048 + FD_MARGIN)
        assert done.stderr == ""
    else:
        assert new_soft == hard and cap + backlog + FD_MARGIN <= hard and cap >= 16
        assert "too low for HOOKLINE_HTTP_MAX_CONNECTIONS=4096" in done.stderr
        assert f"serving at most {cap} connections" in done.stderr
