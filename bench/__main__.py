"""Benchmarks: hookline against baselines run in the same invocation, printed as a table.

    python -m bench            (or: make bench)

Uses the Postgres and Redis of HOOKLINE_TEST_DATABASE_URL / HOOKLINE_TEST_REDIS_URL
(default: the machine's on 127.0.0.1), in a fresh database that is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import sys

from bench.e2e import run_all


def main() -> int:
    admin = os.environ.get(
        "HOOKLINE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    redis = os.environ.get("HOOKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    quick = "--quick" in sys.argv
    asyncio.run(run_all(admin, redis, quick=quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
