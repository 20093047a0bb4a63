"""Benchmarks: hookline against baselines run in the same invocation, printed as a table.

    python -m bench                      (or: make bench) every scenario, full size
    python -m bench --quick              every scenario, smaller (well under 2 minutes)
    python -m bench --only fanout,drain  just these (see bench.suite.SCENARIOS)

Uses the Postgres and Redis of HOOKLINE_TEST_DATABASE_URL / HOOKLINE_TEST_REDIS_URL
(default: the machine's on 127.0.0.1), in a fresh database that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from bench.harness import BenchError
from bench.suite import SCENARIOS, run


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}"
        )
    return names


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, same scenarios")
    parser.add_argument(
        "--only",
        type=_names,
        default=list(SCENARIOS),
        metavar="NAME[,NAME]",
        help=f"run only these scenarios: {', '.join(SCENARIOS)} "
        "(latency also runs e2e, whose rate it halves)",
    )
    args = parser.parse_args()
    admin = os.environ.get(
        "HOOKLINE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    redis = os.environ.get("HOOKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        asyncio.run(run(admin, redis, args.only, quick=args.quick))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
