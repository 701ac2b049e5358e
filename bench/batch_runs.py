"""What the consumer batch benches share: a fresh database of each kind, the table, the JSON.

A bench module gives `measure(url, events)`, which returns one row per batch size
(batch, batches, statements_per_batch, statements_per_event, ms_per_event,
ms_per_batch_p50), and calls `main(__doc__, name, measure)`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from leadflow.db.migrate import upgrade
from tests.fixtures.databases import create_postgres_database, drop_postgres_database

RESULTS = Path(__file__).resolve().parent / "results"

Measure = Callable[[str, int], Coroutine[Any, Any, list[dict[str, Any]]]]


def run(measure: Measure, kind: str, server: str | None, events: int) -> list[dict[str, Any]]:
    """Measure on a fresh, migrated database of `kind`."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            upgrade(url)
            return [{"database": kind, **r} for r in asyncio.run(measure(url, events))]
    assert server is not None
    url = create_postgres_database(server)
    try:
        upgrade(url)
        return [{"database": kind, **r} for r in asyncio.run(measure(url, events))]
    finally:
        drop_postgres_database(url)


def main(doc: str | None, name: str, measure: Measure) -> None:
    """Measure on SQLite, and on PostgreSQL when a server is named; print the table and
    write `bench/results/<name>.json`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (postgresql+asyncpg://...)")
    parser.add_argument("--events", type=int, default=1000, help="events per batch size")
    args = parser.parse_args()
    server = args.postgres or os.environ.get("LEADFLOW_TEST_POSTGRES_URL") or None
    rows = run(measure, "sqlite", None, args.events)
    if server:
        rows += run(measure, "postgresql", server, args.events)
    sys.stdout.write(f"{'database':<11} {'batch':>5} {'stmts/batch':>11} {'stmts/event':>11}")
    sys.stdout.write(f" {'ms/event':>9} {'ms/batch p50':>12}\n")
    for r in rows:
        sys.stdout.write(
            f"{r['database']:<11} {r['batch']:>5} {r['statements_per_batch']:>11.1f} "
            f"{r['statements_per_event']:>11.2f} {r['ms_per_event']:>9.2f} "
            f"{r['ms_per_batch_p50']:>12.1f}\n"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
