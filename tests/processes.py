"""Real hookline processes for tests that kill, restart and race them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hookline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process load exactly ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        env[f"HOOKLINE_{name.upper()}"] = str(value)
    env["PYTHONPATH"] = str(ROOT)
    return env


def start(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hookline", *args],
        env=settings_env(settings),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout)


@contextmanager
def workers(settings: Settings, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` worker processes, stopped gracefully (then killed) at the end."""
    running = [start(settings, "worker") for _ in range(count)]
    try:
        yield running
    finally:
        for process in running:
            try:
                stop(process)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
