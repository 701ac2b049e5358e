"""SLA monitor batches: SQL statements and milliseconds per event for batches of 1, 50 and 200.

Run: `PYTHONPATH=. python bench/sla_batches.py [--postgres URL] [--events N]`. Each batch
goes through the monitor's consumer as the service runs it (inbox, batch handler, one
commit) on a fresh database: SQLite, and PostgreSQL when `--postgres` or
LEADFLOW_TEST_POSTGRES_URL names a server. A batch mixes what the monitor reads: new
assignments (a window and a three-stage ladder each, or a business-time window), first
contacts and outcomes of leads assigned in earlier batches or earlier in the same batch,
and reassignments. Writes `bench/results/sla_batches.json`.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from bench.batch_runs import main
from leadflow.bus import Record
from leadflow.bus.memory import InMemoryBus
from leadflow.config import LeadflowConfig
from leadflow.db.engine import create_engine
from leadflow.events import Envelope, LeadActivity, LeadAssigned, new_event
from leadflow.metrics import consumer_metrics
from leadflow.processing import EventProcessor
from leadflow.settings import Settings
from leadflow_sla import domain, service

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
SIZES = (1, 50, 200)
STOPPING = ["contacted", "contacted", "contacted", "accepted", "rejected", "converted"]


def config() -> LeadflowConfig:
    """Eight teams of six reps (half of them on working hours); a wall-clock ladder for
    MQLs, a business-time window for the rest."""
    reps = [
        {"id": f"r{i}", "name": f"Rep {i}", "email": f"r{i}@example.com"}
        | (
            {"working_hours": [{"days": ["mon-fri"], "start": "09:00", "end": "17:00"}]}
            if i % 2
            else {}
        )
        for i in range(48)
    ]
    teams = [
        {
            "name": f"t{t}",
            "manager": {"name": "M", "email": f"m{t}@example.com"},
            "reps": [f"r{t * 6 + i}" for i in range(6)],
        }
        for t in range(8)
    ]
    policies = [
        {
            "name": "ladder",
            "window": "10m",
            "tiers": ["mql"],
            "warn_at_percent": 50,
            "escalate_after": "5m",
            "max_escalations": 2,
        },
        {"name": "office", "window": "4h", "clock": "business"},
    ]
    return LeadflowConfig.model_validate(
        {
            "sources": {"web": {"kind": "standard"}},
            "scoring": {"version": "b", "mql_threshold": 60},
            "reps": reps,
            "teams": teams,
            "routing": {"version": "b", "fallback_team": "t7", "rules": []},
            "sla": {"policies": policies},
        }
    )


class Leads:
    """The leads of the run: each new one assigned, later contacted, closed or moved on."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._next = 0
        self._open: list[tuple[str, int, list[str]]] = []  # lead key, seq, previous reps

    def _assigned(self, lead_key: str, seq: int, previous: list[str]) -> Envelope:
        rep = self._rng.randrange(48)
        data = LeadAssigned(
            lead_key=lead_key,
            assignment_id=f"{lead_key}-{seq}",
            rep_id=f"r{rep}",
            rep_name=f"Rep {rep}",
            team=f"t{rep // 6}",
            rule="fallback",
            tier="mql" if self._rng.random() < 0.8 else "watch",
            reason="bench",
            assigned_at=NOW,
            received_at=NOW,
            previous_rep_ids=previous,
            source="web",
        )
        type_ = "lead.reassigned" if previous else "lead.assigned"
        self._open.append((lead_key, seq, [*previous, f"r{rep}"]))
        return new_event(type_, data, source="/bench", time=NOW)

    def next_event(self) -> Envelope:
        """60% new assignments, 30% contacts or outcomes, 10% reassignments."""
        roll = self._rng.random()
        if roll < 0.6 or not self._open:
            self._next += 1
            return self._assigned(f"lk_{self._next}", 1, [])
        lead_key, seq, previous = self._open.pop(self._rng.randrange(len(self._open)))
        if roll < 0.9:
            kind = self._rng.choice(STOPPING)
            at = NOW + timedelta(minutes=self._rng.randint(1, 30))
            data = LeadActivity(lead_key=lead_key, activity=kind, occurred_at=at, source="crm")
            return new_event(f"lead.{kind}", data, source="/bench", time=at)
        return self._assigned(lead_key, seq + 1, previous)


async def measure(url: str, events: int) -> list[dict[str, Any]]:
    """Per batch size: statements and milliseconds per event through the monitor's consumer."""
    cfg = config()
    engine = create_engine(url)
    sent = [0]

    def count(*_args: Any) -> None:
        sent[0] += 1

    async def handle(session: AsyncSession, batch: Sequence[Envelope], now: datetime) -> None:
        await service.apply_events(session, batch, cfg, now)

    processor = EventProcessor(
        consumer="leadflow-sla-monitor",
        engine=engine,
        handlers=dict.fromkeys(
            ("lead.assigned", "lead.reassigned", *domain.STOPPING_ACTIVITIES), handle
        ),
        dead_letters=InMemoryBus(),
        settings=Settings(),
        metrics=consumer_metrics("sla_batches_bench"),
        clock=lambda: NOW,
    )
    leads = Leads(random.Random(7))
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
                    envelope = leads.next_event()
                    topic = (
                        "leads.assigned" if envelope.type.endswith("assigned") else "leads.activity"
                    )
                    records.append(Record(topic, 0, offset, b"k", envelope.to_bytes()))
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
    main(__doc__, "sla_batches", measure)
