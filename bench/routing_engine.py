"""Routing decisions per second of the pure engine: 50 rules, 500 reps (DESIGN.md §11).

Run: `python bench/routing_engine.py [decisions]`. Prints decisions/s on one core (by the
wall clock, and by the process's CPU time, which a busy machine disturbs less) and writes
bench/results/routing_engine.json.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from leadflow.config import LeadflowConfig
from leadflow.events import Company, Lead, LeadScored
from leadflow_router.availability import RepLoad
from leadflow_router.domain import RoutingState, in_play, route

RESULTS = Path(__file__).resolve().parent / "results"
ZONES = ["Europe/Lisbon", "America/New_York", "Asia/Kolkata", "Europe/Berlin", "Asia/Tokyo"]
COUNTRIES = ["US", "GB", "DE", "FR", "PT", "IN", "JP", "BR", "ES", "IT"]


def config() -> LeadflowConfig:
    """50 teams of 10 reps with hours, holidays, caps and skills; 49 rules and a fallback."""
    reps = [
        {
            "id": f"r{i}",
            "name": f"Rep {i}",
            "email": f"r{i}@example.com",
            "timezone": ZONES[i % len(ZONES)],
            "country": COUNTRIES[i % len(COUNTRIES)],
            "working_hours": [{"days": ["mon-fri"], "start": "07:00", "end": "22:00"}],
            "max_per_day": 50,
            "max_open": 30,
            "languages": ["en", "de", "fr"][: 1 + i % 3],
        }
        for i in range(500)
    ]
    distributions = ["round_robin", "weighted", "least_loaded"]
    teams = [
        {
            "name": f"t{t}",
            "manager": {"name": "M", "email": "m@example.com"},
            "reps": [f"r{t * 10 + i}" for i in range(10)],
            "distribution": distributions[t % 3],
            "skills": ["language"] if t % 2 else [],
        }
        for t in range(50)
    ]
    rules = [
        {
            "name": f"rule-{t}",
            "team": f"t{t}",
            "when": [
                {"field": "lead.country", "equals": COUNTRIES[t % len(COUNTRIES)]},
                {"field": "lead.company.size", "gte": (t // len(COUNTRIES)) * 200},
                {"field": "score.score", "gte": 60},
            ],
        }
        for t in range(49)
    ]
    return LeadflowConfig.model_validate(
        {
            "sources": {"web": {"kind": "standard"}},
            "scoring": {"version": "b", "mql_threshold": 60},
            "reps": reps,
            "teams": teams,
            "accounts": [
                {"name": f"A{i}", "domains": [f"a{i}.example"], "owner": f"r{i}"}
                for i in range(200)
            ],
            "routing": {"version": "b", "fallback_team": "t49", "rules": rules},
            "sla": {"policies": [{"name": "hot", "window": "5m"}]},
        }
    )


def main(n: int) -> None:
    cfg = config()
    rng = random.Random(1)
    now = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    leads = [
        LeadScored(
            lead_key=f"lk_{i}",
            model_version="b",
            score=rng.randint(60, 100),
            fit=30,
            engagement=40,
            tier="mql",
            qualified=True,
            newly_qualified=True,
            reasons=[],
            scored_at=now,
            received_at=now,
            source="web",
            lead=Lead(
                email=f"x{i}@{'a' + str(rng.randint(0, 999)) if i % 5 else 'b'}.example",
                country=rng.choice(COUNTRIES),
                language=rng.choice(["en", "de", "fr", "pt"]),
                company=Company(size=rng.randint(1, 5000)),
            ),
        )
        for i in range(1000)
    ]
    reps = {rep.id: rep for rep in cfg.reps}
    loads = {rep.id: RepLoad(today=rng.randint(0, 49), open=rng.randint(0, 29)) for rep in cfg.reps}
    states = {}
    for lead in leads:
        play = in_play(cfg, lead, now)
        states[lead.lead_key] = RoutingState(
            reps={r: reps[r] for r in play.reps}, loads=loads, last_turn={}
        )
    for lead in leads[:200]:  # warm caches (holiday calendars, account index)
        route(cfg, lead, now, states[lead.lead_key])
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        lead = leads[i % len(leads)]
        route(cfg, lead, now + timedelta(seconds=i), states[lead.lead_key])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    sys.stdout.write(
        f"{n} decisions in {elapsed:.2f} s: {n / elapsed:,.0f} decisions/s (one core); "
        f"{cpu / n * 1e6:.1f} us CPU each ({n / cpu:,.0f}/s)\n"
    )
    result = {
        "decisions": n,
        "seconds": elapsed,
        "per_second": n / elapsed,
        "cpu_us_per_decision": cpu / n * 1e6,
        "per_cpu_second": n / cpu,
        "rules": 50,
        "reps": 500,
        "target_per_second": 20000,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "routing_engine.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
