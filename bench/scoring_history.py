"""Scoring cost per event for a person with 10 to 10,000 earlier touches (`make bench`).

Run from the repository root: `PYTHONPATH=. python bench/scoring_history.py
[--postgres URL] [--events N]`. PostgreSQL runs too when `--postgres` or
LEADFLOW_TEST_POSTGRES_URL gives a server (a database is created on it and dropped).

For each size, a fresh migrated database gets one person with that many touches: the
touch rows, and the aggregate folded from them (what the service stores after scoring
them one by one). Then `--events` more events of that person are scored, each in its own
transaction as the consumer does (`service.score_received` with the example config), and
the wall time of each is measured. For contrast, the table also gives what reading and
scoring every touch of the person costs at that size (what each event cost before
aggregates). Prints a table and writes bench/results/scoring_history.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from leadflow.config import Scoring, load_config
from leadflow.db.engine import create_engine, session_factory
from leadflow.db.migrate import upgrade
from leadflow.events import Envelope, LeadReceived
from leadflow_intake.canonical import LeadBody, to_event
from leadflow_scoring import aggregate, repository, service, snapshot
from leadflow_scoring.domain import score
from leadflow_scoring.identity import identifiers_of
from leadflow_scoring.profile import Touch, build_profile, lead_fields, touch_detail
from leadflow_scoring.tables import lead_identifiers, lead_profiles, lead_touches
from tests.fixtures.databases import create_postgres_database, drop_postgres_database
from tests.fixtures.keys import KEYS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SIZES = (10, 100, 1000, 10000)
ACTIVITIES = ["page_visit", "pricing_page", "email_click", "webinar", "content_download"]
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def event(i: int) -> Envelope:
    """The person's i-th webhook, a minute after the previous one (a form spammed by one email)."""
    lead: dict[str, Any] = {"email": "spammed@northwind.example", "job_title": "Analyst"}
    if i % 10 == 0:
        lead["company"] = {"size": 100 + i % 500, "industry": "logistics"}
    body = LeadBody.model_validate(
        {"event": "lead", "activity": ACTIVITIES[i % len(ACTIVITIES)], "lead": lead}
    )
    return to_event(
        body, keys=KEYS, source="web", delivery_id=f"d{i}", now=T0 + timedelta(minutes=i)
    )


def touch_of(envelope: Envelope) -> Touch:
    """The touch scoring records for an event."""
    data = envelope.data
    assert isinstance(data, LeadReceived)
    return Touch(
        data.activity,
        data.source,
        data.received_at,
        touch_detail(data.lead),
        envelope.id,
        lead_fields(data.lead),
    )


async def seed(url: str, model: Scoring, size: int) -> str:
    """One person with `size` touches, as scoring them one by one leaves the database."""
    envelopes = [event(i) for i in range(size)]
    touches = [touch_of(e) for e in envelopes]
    state = aggregate.fold(touches, model)
    person, result = aggregate.evaluate(state, model, touches[-1].occurred_at)
    first = envelopes[0].data
    assert isinstance(first, LeadReceived)
    key = first.lead_key
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            rows = [
                {
                    "lead_key": key,
                    "event_id": t.event_id,
                    "source": t.source,
                    "activity": t.activity,
                    "occurred_at": t.occurred_at,
                    "detail": t.detail,
                    "fields": t.fields,
                }
                for t in touches
            ]
            for start in range(0, len(rows), 1000):
                await conn.execute(insert(lead_touches), rows[start : start + 1000])
            await conn.execute(
                insert(lead_identifiers),
                [
                    {
                        "identifier": i.key,
                        "kind": i.kind,
                        "lead_key": key,
                        "first_event_id": envelopes[0].id,
                        "created_at": T0,
                    }
                    for i in identifiers_of(first, KEYS)
                ],
            )
            await conn.execute(
                insert(lead_profiles).values(
                    lead_key=key,
                    fields=person.fields,
                    first_source=person.first_touch.source,
                    last_source=person.last_touch.source,
                    first_seen_at=person.first_touch.occurred_at,
                    last_seen_at=person.last_touch.occurred_at,
                    score=result.total,
                    fit=result.fit,
                    engagement=result.engagement,
                    tier=result.tier,
                    grade=result.grade,
                    model_version=model.version,
                    qualified_at=None,
                    updated_at=touches[-1].occurred_at,
                    reasons=[r.model_dump(mode="json") for r in result.reasons],
                    aggregate=snapshot.dump(state),
                )
            )
    finally:
        await engine.dispose()
    return key


async def measure(url: str, model: Scoring, size: int, events: int) -> dict[str, Any]:
    """Per-event scoring times after `size` touches, and the cost of reading them all."""
    key = await seed(url, model, size)
    engine = create_engine(url)
    sessions = session_factory(engine)
    per_event: list[float] = []
    full_read: list[float] = []
    try:
        for i in range(size, size + events):
            envelope = event(i)
            now = T0 + timedelta(minutes=i)
            started = time.perf_counter()
            async with sessions() as session, session.begin():
                await service.score_received(session, envelope, model, KEYS, now)
            per_event.append(time.perf_counter() - started)
        for _ in range(max(3, events // 10)):
            started = time.perf_counter()
            async with sessions() as session, session.begin():
                history = await repository.touches(session, key)
                person = build_profile(history)
                score(model, person.fields, history, now)
            full_read.append(time.perf_counter() - started)
    finally:
        await engine.dispose()
    per_event.sort()
    return {
        "touches_before": size,
        "events": events,
        "per_event_ms_median": statistics.median(per_event) * 1000,
        "per_event_ms_p95": per_event[int(0.95 * (len(per_event) - 1))] * 1000,
        "read_every_touch_ms_median": statistics.median(full_read) * 1000,
    }


def run(kind: str, server: str | None, model: Scoring, events: int) -> list[dict[str, Any]]:
    """Every size on one kind of database (a fresh database per size)."""
    rows = []
    for size in SIZES:
        with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as work:
            if server is None:
                url = f"sqlite+aiosqlite:///{Path(work) / 'leadflow.db'}"
            else:
                url = create_postgres_database(server)
            try:
                upgrade(url)
                rows.append({"database": kind, **asyncio.run(measure(url, model, size, events))})
            finally:
                if server is not None:
                    drop_postgres_database(url)
        row = rows[-1]
        sys.stdout.write(
            f"{kind:<10} {size:>8,} {row['per_event_ms_median']:>14.2f} "
            f"{row['per_event_ms_p95']:>10.2f} {row['read_every_touch_ms_median']:>22.2f}\n"
        )
        sys.stdout.flush()
    return rows


def main() -> None:
    """Measure on SQLite, and on PostgreSQL when a server is given."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (postgresql+asyncpg://...)")
    parser.add_argument("--events", type=int, default=50, help="events scored per size")
    args = parser.parse_args()
    server = args.postgres or os.environ.get("LEADFLOW_TEST_POSTGRES_URL") or None
    model = load_config(ROOT / "config" / "example.yaml").scoring
    sys.stdout.write(
        f"{'database':<10} {'touches':>8} {'event (ms p50)':>14} {'p95':>10} "
        f"{'read every touch (ms)':>22}\n"
    )
    rows = run("sqlite", None, model, args.events)
    if server:
        rows += run("postgresql", server, model, args.events)
    RESULTS.mkdir(exist_ok=True)
    result = {"recent_touches": aggregate.RECENT_TOUCHES, "rows": rows}
    (RESULTS / "scoring_history.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
