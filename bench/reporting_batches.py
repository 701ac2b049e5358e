"""Reporting batches: SQL statements and milliseconds per event for batches of 1, 50 and 200 events.

Run: `PYTHONPATH=. python bench/reporting_batches.py [--postgres URL] [--events N]`. Each
batch goes through the reporting consumer as the SLA monitor runs it (inbox, batch handler,
one commit) on a fresh database: SQLite, and PostgreSQL when `--postgres` or
LEADFLOW_TEST_POSTGRES_URL names a server. The stream interleaves leads as the four topics
do: each step a lead arrives and is scored, the one before is assigned, the third before is
contacted, and every fifth step the tenth lead before is won (so a batch of 50 or 200 holds
several events of one lead, and outcomes of leads stored by earlier batches).
Statements are counted where they are sent (a many-row statement counts once). Writes
`bench/results/reporting_batches.json`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from bench.batch_runs import main
from leadflow.bus import Record
from leadflow.bus.memory import InMemoryBus
from leadflow.config import Reporting
from leadflow.db.engine import create_engine
from leadflow.events import (
    Company,
    Envelope,
    Lead,
    LeadActivity,
    LeadAssigned,
    LeadReceived,
    LeadScored,
    new_event,
)
from leadflow.metrics import consumer_metrics
from leadflow.processing import EventProcessor
from leadflow.settings import Settings
from leadflow_sla.reporting import service
from leadflow_sla.reporting.consumer import FOLDED

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
SIZES = (1, 50, 200)
SOURCES = ("google", "linkedin", "partner", "ebook")
REPORTING = Reporting.model_validate(
    {
        "segments": [
            {"name": "enterprise", "when": [{"field": "lead.company.size", "gte": 1000}]},
            {"name": "demo", "when": [{"field": "activity", "equals": "demo_request"}]},
            {"name": "smb", "when": [{"field": "lead.company.size", "lt": 1000}]},
        ]
    }
)


def _key(i: int) -> str:
    return f"lk_bench_{i:08d}"


def _received(i: int, at: datetime) -> Envelope:
    data = LeadReceived(
        lead_key=_key(i),
        source="web",
        source_kind="standard",
        delivery_id=f"d{i}",
        activity="demo_request" if i % 7 == 0 else "form_fill",
        received_at=at,
        lead=Lead(
            email=f"buyer{i}@corp.example",
            company=Company(name=f"Company {i}", size=(i * 37) % 3000),
            utm={"source": SOURCES[i % len(SOURCES)]},
            campaign="spring" if i % 3 == 0 else None,
        ),
    )
    return new_event("lead.received", data, source="/bench", time=at)


def _scored(i: int, at: datetime) -> Envelope:
    data = LeadScored(
        lead_key=_key(i),
        model_version="b",
        score=70,
        fit=30,
        engagement=40,
        tier="mql" if i % 4 else "nurture",
        qualified=bool(i % 4),
        newly_qualified=bool(i % 4),
        reasons=[],
        scored_at=at,
        received_at=at,
        source="web",
        lead=Lead(),
    )
    return new_event("lead.scored", data, source="/bench", time=at)


def _assigned(i: int, at: datetime) -> Envelope:
    data = LeadAssigned(
        lead_key=_key(i),
        assignment_id=f"a{i}",
        rep_id=f"r{i % 12}",
        rep_name="Rep",
        team=f"t{i % 3}",
        rule="r",
        tier="mql",
        reason="",
        assigned_at=at,
        received_at=at,
    )
    return new_event("lead.assigned", data, source="/bench", time=at)


def _activity(i: int, kind: str, at: datetime, amount: float | None = None) -> Envelope:
    data = LeadActivity(
        lead_key=_key(i), activity=kind, occurred_at=at, source="crm", amount=amount
    )
    return new_event(f"lead.{kind}", data, source="/bench", time=at)


def stream() -> Iterator[Envelope]:
    """Lead events interleaved as they come off the four topics (endless)."""
    step = 0
    while True:
        at = NOW + timedelta(seconds=step)
        yield _received(step, at)
        yield _scored(step, at)
        if step >= 1:
            yield _assigned(step - 1, at)
        if step >= 3:
            yield _activity(step - 3, "contacted", at)
        if step >= 10 and step % 5 == 0:
            yield _activity(step - 10, "won", at, amount=1000.0)
        step += 1


async def measure(url: str, events: int) -> list[dict[str, Any]]:
    """Per batch size: statements and milliseconds per event through the reporting consumer."""
    engine = create_engine(url)
    sent = [0]

    def count(*_args: Any) -> None:
        sent[0] += 1

    async def handle(session: AsyncSession, batch: Sequence[Envelope], now: datetime) -> None:
        await service.apply_events(session, batch, REPORTING, now)

    processor = EventProcessor(
        consumer=service.CONSUMER,
        engine=engine,
        handlers=dict.fromkeys(FOLDED, handle),
        dead_letters=InMemoryBus(),
        settings=Settings(),
        metrics=consumer_metrics("reporting_batches_bench"),
        clock=lambda: NOW,
    )
    source = stream()
    offset = 0
    rows = []
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        for size in (SIZES[-1], *SIZES):  # the first round warms caches and the database
            batches = max(5, events // size)
            times: list[float] = []
            statements = 0
            for _ in range(batches):
                records = []
                for _ in range(size):
                    envelope = next(source)
                    key = envelope.subject.encode()
                    records.append(Record("leads.activity", 0, offset, key, envelope.to_bytes()))
                    offset += 1
                before = sent[0]
                started = time.perf_counter()
                await processor.process(records)
                times.append(time.perf_counter() - started)
                statements += sent[0] - before
            rows.append(
                {
                    "batch": size,
                    "batches": batches,
                    "statements_per_batch": statements / batches,
                    "statements_per_event": statements / batches / size,
                    "ms_per_event": sum(times) / batches / size * 1000,
                    "ms_per_batch_p50": statistics.median(times) * 1000,
                }
            )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
        await engine.dispose()
    return rows[1:]


if __name__ == "__main__":
    main(__doc__, "reporting_batches", measure)
