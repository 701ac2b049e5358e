"""Router batches: SQL statements and milliseconds per event for batches of 1, 50 and 200 leads.

Run: `PYTHONPATH=. python bench/router_batches.py [--postgres URL] [--events N]`. Each batch
goes through the router's consumer as the service runs it (inbox, batch handler, one
commit) on a fresh database: SQLite, and PostgreSQL when `--postgres` or
LEADFLOW_TEST_POSTGRES_URL names a server. Eight teams of six reps share leads by round
robin, least load and weight (static and by conversion); every lead is newly qualified.
Writes `bench/results/router_batches.json`.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event

from bench.batch_runs import main
from leadflow.bus import Record
from leadflow.bus.memory import InMemoryBus
from leadflow.config import LeadflowConfig
from leadflow.db.engine import create_engine
from leadflow.events import Company, Envelope, Lead, LeadScored, new_event
from leadflow.metrics import consumer_metrics
from leadflow.processing import EventProcessor
from leadflow.settings import Settings
from leadflow_router import service

COUNTRIES = ["US", "GB", "DE", "FR", "PT", "IN", "JP", "BR"]
DISTRIBUTIONS: list[dict[str, Any]] = [
    {"distribution": "round_robin"},
    {"distribution": "least_loaded"},
    {"distribution": "weighted"},
    {"distribution": "weighted", "weights": "conversion"},
]
NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
SIZES = (1, 50, 200)


def config() -> LeadflowConfig:
    """Eight teams of six reps, a rule per country, a fallback team, twenty named accounts."""
    reps = [
        {"id": f"r{i}", "name": f"Rep {i}", "email": f"r{i}@example.com", "max_open": 10**6}
        for i in range(48)
    ]
    teams = [
        {
            "name": f"t{t}",
            "manager": {"name": "M", "email": f"m{t}@example.com"},
            "reps": [f"r{t * 6 + i}" for i in range(6)],
        }
        | DISTRIBUTIONS[t % len(DISTRIBUTIONS)]
        for t in range(8)
    ]
    rules = [
        {
            "name": f"c-{c.lower()}",
            "team": f"t{t}",
            "when": [{"field": "lead.country", "equals": c}],
        }
        for t, c in enumerate(COUNTRIES[:7])
    ]
    return LeadflowConfig.model_validate(
        {
            "sources": {"web": {"kind": "standard"}},
            "scoring": {"version": "b", "mql_threshold": 60},
            "reps": reps,
            "teams": teams,
            "accounts": [
                {"name": f"A{i}", "domains": [f"a{i}.example"], "owner": f"r{i * 2}"}
                for i in range(20)
            ],
            "routing": {"version": "b", "fallback_team": "t7", "rules": rules},
            "sla": {"policies": [{"name": "hot", "window": "5m"}]},
        }
    )


def scored_lead(i: int, rng: random.Random) -> Envelope:
    domain = f"a{rng.randint(0, 19)}" if i % 10 == 0 else "corp"
    data = LeadScored(
        lead_key=f"lk_{i}",
        model_version="b",
        score=rng.randint(60, 100),
        fit=30,
        engagement=40,
        tier="mql",
        qualified=True,
        newly_qualified=True,
        reasons=[],
        scored_at=NOW,
        received_at=NOW,
        source="web",
        lead=Lead(
            email=f"buyer{i}@{domain}.example",
            first_name="Jo",
            country=rng.choice(COUNTRIES),
            company=Company(name=f"Company {i}", size=rng.randint(1, 5000)),
        ),
    )
    return new_event("lead.scored", data, source="/bench", time=NOW)


async def measure(url: str, events: int) -> list[dict[str, Any]]:
    """Per batch size: statements and milliseconds per event through the router's consumer."""
    cfg = config()
    engine = create_engine(url)
    sent = [0]

    def count(*_args: Any) -> None:
        sent[0] += 1

    async def handle(session: Any, batch: Any, now: datetime) -> None:
        await service.apply_events(session, batch, cfg, now)

    processor = EventProcessor(
        consumer="leadflow-router",
        engine=engine,
        handlers={"lead.scored": handle},
        dead_letters=InMemoryBus(),
        settings=Settings(),
        metrics=consumer_metrics("router_batches_bench"),
        clock=lambda: NOW,
    )
    rng = random.Random(7)
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
                    envelope = scored_lead(offset, rng)
                    records.append(Record("leads.scored", 0, offset, b"k", envelope.to_bytes()))
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
    main(__doc__, "router_batches", measure)
