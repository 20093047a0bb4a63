"""The named queries of ``delivery/sql/*.sql``, read once for the whole delivery side."""

from __future__ import annotations

from pathlib import Path

from hookline.db import Queries

SQL = Queries(Path(__file__).resolve().parent / "sql")
