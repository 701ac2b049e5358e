"""Scoring cost per event by batch size: SQL statements and wall time (`make bench`).

Run from the repository root: `PYTHONPATH=. python bench/scoring_batches.py
[--postgres URL] [--events N]`. PostgreSQL runs too when `--postgres` or
LEADFLOW_TEST_POSTGRES_URL gives a server (a database is created on it and dropped).

For each batch size (1, 50, 200), a fresh migrated database scores the same `--events`
webhooks with the example config as the consumer does: per batch one transaction with the
inbox rows, `service.score_events` (load the batch's people, score in memory, save in
bulk) and the outbox rows. A quarter of the webhooks start a person by email, a quarter
start a second profile by phone, a quarter link the two (a merge each), a quarter come
back by email.
Statements are counted where they are sent (a many-row statement counts once). Prints a
table and writes bench/results/scoring_batches.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.event import listen

from leadflow.config import load_config
from leadflow.db.engine import create_engine, session_factory
from leadflow.db.migrate import upgrade
from leadflow.events import Envelope
from leadflow.inbox import first_deliveries
from leadflow_intake.canonical import LeadBody, to_event
from leadflow_scoring import service
from tests.fixtures.databases import create_postgres_database, drop_postgres_database
from tests.fixtures.keys import KEYS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SIZES = (1, 50, 200)
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
ACTIVITIES = ["form_fill", "pricing_page", "webinar", "content_download", "demo_request"]


def webhooks(count: int) -> list[Envelope]:
    """`count` webhooks of `count // 4` people, in four rounds: by email (a new profile),
    by phone (another new profile), by both (merging the two), by email again."""
    people = count // 4
    rounds: list[dict[str, Any]] = [
        {"email": "buyer{n}@northwind.example", "job_title": "Analyst"},
        {"phone": "+1613{n:07d}"},
        {"email": "buyer{n}@northwind.example", "phone": "+1613{n:07d}"},
        {"email": "buyer{n}@northwind.example"},
    ]
    found = []
    for r, lead in enumerate(rounds):
        for n in range(people):
            i = r * people + n
            body = LeadBody.model_validate(
                {
                    "event": "lead",
                    "activity": ACTIVITIES[i % len(ACTIVITIES)],
                    "lead": {k: v.format(n=5550000 + n) for k, v in lead.items()},
                }
            )
            at = T0 + timedelta(seconds=i)
            found.append(to_event(body, keys=KEYS, source="web", delivery_id=f"d{i}", now=at))
    return found


async def measure(url: str, size: int, events: list[Envelope]) -> dict[str, Any]:
    """Score `events` in batches of `size`; statements and milliseconds per event."""
    model = load_config(ROOT / "config" / "example.yaml").scoring
    engine = create_engine(url)
    sessions = session_factory(engine)
    sent = [0]

    def count(*_: Any) -> None:
        sent[0] += 1

    listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        started = time.perf_counter()
        for start in range(0, len(events), size):
            batch = events[start : start + size]
            now = T0 + timedelta(hours=1)
            async with sessions() as session, session.begin():
                await first_deliveries(session, "leadflow-scoring", [e.id for e in batch], now)
                await service.score_events(session, batch, model, KEYS, now)
        elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    return {
        "batch": size,
        "events": len(events),
        "statements_per_event": sent[0] / len(events),
        "ms_per_event": elapsed * 1000 / len(events),
    }


def run(kind: str, server: str | None, events: list[Envelope]) -> list[dict[str, Any]]:
    """Every batch size on one kind of database (a fresh database per size)."""
    rows = []
    for size in SIZES:
        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as work:
            if server is None:
                url = f"sqlite+aiosqlite:///{Path(work) / 'leadflow.db'}"
            else:
                url = create_postgres_database(server)
            try:
                upgrade(url)
                rows.append({"database": kind, **asyncio.run(measure(url, size, events))})
            finally:
                if server is not None:
                    drop_postgres_database(url)
        row = rows[-1]
        sys.stdout.write(
            f"{kind:<10} {size:>6} {row['statements_per_event']:>20.3f} "
            f"{row['ms_per_event']:>14.3f}\n"
        )
        sys.stdout.flush()
    return rows


def main() -> None:
    """Measure on SQLite, and on PostgreSQL when a server is given."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", default=os.environ.get("LEADFLOW_TEST_POSTGRES_URL"))
    parser.add_argument("--events", type=int, default=1200)
    args = parser.parse_args()
    events = webhooks(args.events)
    sys.stdout.write(f"{'database':<10} {'batch':>6} {'statements/event':>20} {'ms/event':>14}\n")
    rows = run("sqlite", None, events)
    if args.postgres:
        rows += run("postgresql", args.postgres, events)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scoring_batches.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
