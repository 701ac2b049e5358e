"""Scoring decisions per second of the pure engine: 50 rules, 5 touches a lead (DESIGN.md §11).

Run: `python bench/scoring_engine.py [decisions]`. Prints scorings/s on one core (by the
wall clock, and by the process's CPU time, which a busy machine disturbs less) and writes
bench/results/scoring_engine.json. A score writes its reasons only when they are read; the
second line scores and writes every reason, as a service that publishes each score does.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from leadflow.config import Scoring
from leadflow_scoring.domain import score
from leadflow_scoring.profile import Touch

RESULTS = Path(__file__).resolve().parent / "results"
INDUSTRIES = ["software", "saas", "fintech", "retail", "logistics", "health", "education"]
ACTIVITIES = [
    "form_fill",
    "content_download",
    "pricing_page",
    "webinar",
    "email_click",
    "inbound_call",
    "demo_request",
    "free_trial",
]


def model() -> Scoring:
    """25 fit rules (titles, sizes, industries, countries) and 25 engagement rules."""
    fit: list[dict[str, Any]] = [
        {
            "name": f"size-{i}",
            "group": "fit",
            "points": 2 + i % 5,
            "when": [{"field": "lead.company.size", "gte": i * 200}],
        }
        for i in range(8)
    ]
    fit += [
        {
            "name": f"industry-{i}",
            "group": "fit",
            "points": 5,
            "when": [{"field": "lead.company.industry", "equals": name}],
        }
        for i, name in enumerate(INDUSTRIES)
    ]
    fit += [
        {
            "name": f"title-{i}",
            "group": "fit",
            "points": 10,
            "when": [{"field": "lead.job_title", "regex": pattern}],
        }
        for i, pattern in enumerate(
            [
                "(?i)vp|vice president",
                "(?i)director",
                "(?i)head of",
                "(?i)chief|c[etfm]o",
                "(?i)manager",
            ]
        )
    ]
    fit += [
        {
            "name": f"country-{i}",
            "group": "fit",
            "points": 3,
            "when": [{"field": "lead.country", "in": countries}],
        }
        for i, countries in enumerate(
            [["US", "CA"], ["GB", "IE"], ["DE", "AT", "CH"], ["FR", "BE"], ["PT", "ES"]]
        )
    ]
    engagement: list[dict[str, Any]] = [
        {
            "name": f"{activity}-{j}",
            "group": "engagement",
            "points": 5 + j * 5,
            "when": [{"field": "activity", "equals": activity}]
            + ([{"field": "campaign", "prefix": "q4"}] if j else []),
        }
        for activity in ACTIVITIES
        for j in range(3)
    ]
    engagement.append(
        {
            "name": "long-call",
            "group": "engagement",
            "points": 15,
            "when": [
                {"field": "activity", "equals": "inbound_call"},
                {"field": "call_duration_s", "gte": 120},
            ],
        }
    )
    return Scoring.model_validate(
        {"version": "bench", "mql_threshold": 60, "watch_threshold": 40, "rules": fit + engagement}
    )


def main(n: int) -> dict[str, float]:
    """Score `n` profiles; returns the measurement."""
    scoring = model()
    rng = random.Random(1)
    now = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    profiles = []
    for i in range(1000):
        fields = {
            "email": f"p{i}@c{i % 97}.example",
            "job_title": rng.choice(["VP Sales", "Analyst", "Head of Ops", "CTO", "Manager"]),
            "company": {"size": rng.randint(1, 5000), "industry": rng.choice(INDUSTRIES)},
            "country": rng.choice(["US", "GB", "DE", "FR", "PT", "IN"]),
        }
        touches = [
            Touch(
                activity=rng.choice(ACTIVITIES),
                source="web",
                occurred_at=now - timedelta(days=rng.randint(0, 60)),
                detail={
                    "campaign": rng.choice(["q4-demo", "always-on"]),
                    "call_duration_s": rng.randint(0, 600),
                },
                event_id=f"e{i}-{t}",
            )
            for t in range(5)
        ]
        profiles.append((fields, touches))
    for fields, touches in profiles[:200]:
        score(scoring, fields, touches, now)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        fields, touches = profiles[i % len(profiles)]
        score(scoring, fields, touches, now)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    started, written_cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        fields, touches = profiles[i % len(profiles)]
        score(scoring, fields, touches, now).reasons  # noqa: B018 (written when read)
    written, written_cpu = time.perf_counter() - started, time.process_time() - written_cpu
    result = {
        "decisions": n,
        "seconds": elapsed,
        "per_second": n / elapsed,
        "cpu_us_per_decision": cpu / n * 1e6,
        "per_cpu_second": n / cpu,
        "with_reasons_per_second": n / written,
        "with_reasons_cpu_us_per_decision": written_cpu / n * 1e6,
        "rules": len(scoring.rules),
        "touches_per_lead": 5,
        "target_per_second": 20000,
    }
    sys.stdout.write(
        f"{n} scorings in {elapsed:.2f} s: {n / elapsed:,.0f} scorings/s (one core); "
        f"{cpu / n * 1e6:.1f} us CPU each ({n / cpu:,.0f}/s)\n"
        f"with their reasons written: {n / written:,.0f} scorings/s; "
        f"{written_cpu / n * 1e6:.1f} us CPU each ({n / written_cpu:,.0f}/s)\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scoring_engine.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
