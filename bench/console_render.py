"""The managers' console: server-side render time of its pages with 10,000 open windows.

Run: `PYTHONPATH=. python bench/console_render.py [--postgres URL] [--windows N]`. Fills a
fresh database (SQLite, and PostgreSQL when `--postgres` or LEADFLOW_TEST_POSTGRES_URL
names a server that answers) with N open follow-up windows through the SLA monitor's own
service (a sixth overdue, the rest due over the next five hours, over both teams' six
reps) and reporting's lifecycles of the same leads (two in three contacted, some rejected,
won or lost, so that every report has rows to count), waits until the monitor has fired the
overdue ones' breach alerts (as it does once after a start), then times
requests to the SLA monitor's real app, in process (no network): the Now page, its live
board, the Team page and the Reports page, signed in as an admin, and the four reports the
Reports page shows as `/v1/reports/...` serves them. The router and scoring
are not asked (no service token): the pages say so, as they would. Writes
`bench/results/console_render.json`; the target is under 200 ms per page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from leadflow.config import load_config
from leadflow.db.engine import create_engine, session_factory
from leadflow.db.migrate import upgrade
from leadflow.events import (
    Envelope,
    Lead,
    LeadActivity,
    LeadAssigned,
    LeadReceived,
    new_event,
)
from leadflow.processing import utcnow
from leadflow.settings import Settings
from leadflow_sla import repository, service
from leadflow_sla.app import create_app
from leadflow_sla.reporting import service as reporting_service
from tests.fixtures.auth import TEST_TOKEN, TOKENS_ENV
from tests.fixtures.databases import create_postgres_database, drop_postgres_database
from tests.fixtures.stack import CONFIG

RESULTS = Path(__file__).resolve().parent / "results"
PAGES = ("/console", "/console/board", "/console/team", "/console/reports")
# The reports the Reports page shows, as reporting's API serves them (a bearer token).
REPORTS = ("/v1/reports/funnel", "/v1/reports/speed", "/v1/reports/reasons", "/v1/reports/roi")
REPS = {"enterprise": ("ana", "ben", "chloe"), "smb": ("dev", "emma", "felix")}
BATCH = 500
TARGET_MS = 200.0


def leads(count: int) -> list[tuple[Envelope, Envelope]]:
    """`count` received-and-assigned pairs whose windows fall due over six hours around now."""
    now = utcnow()
    pairs = []
    for i in range(count):
        team = "enterprise" if i % 2 else "smb"
        rep = REPS[team][i % 3]
        # The hot-mql window is 5 s: the assignment time places the due time.
        due_in = -3600 + 6 * 3600 * ((i * 7919) % count) / count
        assigned_at = now + timedelta(seconds=due_in - 5)
        key = f"lk_bench_{i:06d}"
        lead = Lead.model_validate({"email": f"{key}@bench.example", "company": {"size": 50}})
        received = LeadReceived(
            lead_key=key,
            source="web",
            source_kind="standard",
            delivery_id=f"d-{key}",
            received_at=assigned_at,
            lead=lead,
        )
        assigned = LeadAssigned(
            lead_key=key,
            assignment_id=f"{key}-1",
            rep_id=rep,
            rep_name=rep.title(),
            team=team,
            rule="everyone-else",
            tier="mql",
            reason="bench",
            assigned_at=assigned_at,
            received_at=assigned_at,
            source="web",
        )
        pairs.append(
            (
                new_event("lead.received", received, source="/bench", time=assigned_at),
                new_event("lead.assigned", assigned, source="/bench", time=assigned_at),
            )
        )
    return pairs


REASONS = ("No budget", "timing", "wrong person", "no  budget")


def outcomes(assigned: Envelope) -> list[Envelope]:
    """What the CRM reports of an assigned bench lead: two in three are contacted within two
    hours; of those, some are rejected, won or lost."""
    data = assigned.data
    assert isinstance(data, LeadAssigned)
    i = int(data.lead_key.rsplit("_", 1)[1])
    if i % 3 == 0:
        return []
    contacted_at = data.assigned_at + timedelta(seconds=(i * 37) % 7200)
    found: list[tuple[str, datetime, dict[str, Any]]] = [("contacted", contacted_at, {})]
    later = contacted_at + timedelta(hours=1)
    if i % 10 == 1:
        found.append(("rejected", later, {"reason": REASONS[i % len(REASONS)]}))
    elif i % 10 == 2:
        found.append(("won", later, {"amount": 1000.0 + i % 5000}))
    elif i % 10 == 4:
        found.append(("lost", later, {"reason": REASONS[(i // 10) % len(REASONS)]}))
    return [
        new_event(
            f"lead.{kind}",
            LeadActivity(
                lead_key=data.lead_key, activity=kind, occurred_at=at, source="crm", **fields
            ),
            source="/bench",
            time=at,
        )
        for kind, at, fields in found
    ]


async def fill(url: str, count: int) -> None:
    """Open `count` windows and their lifecycles, `BATCH` leads per transaction."""
    config = load_config(CONFIG)
    engine = create_engine(url)
    try:
        pairs = leads(count)
        for start in range(0, count, BATCH):
            chunk = pairs[start : start + BATCH]
            now = utcnow()
            async with session_factory(engine)() as session, session.begin():
                assigned = [a for _, a in chunk]
                await service.apply_events(session, assigned, config, now, lambda _: None)
                received = [e for pair in chunk for e in pair]
                received += [e for _, a in chunk for e in outcomes(a)]
                await reporting_service.apply_events(session, received, config.reporting, now)
    finally:
        await engine.dispose()


async def alerts_fired(url: str, timeout_s: float = 120.0) -> float:
    """Wait until the monitor has fired the alerts of the windows already overdue (a
    thousand breaches at start-up): the pages are timed in the steady state after it."""
    engine = create_engine(url)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < timeout_s:
            async with session_factory(engine)() as session:
                if not await repository.due_times(session, utcnow(), 1):
                    break
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()
    return time.perf_counter() - started


def measure(url: str, count: int, requests: int) -> list[dict[str, Any]]:
    """Per page: median and p95 milliseconds of `requests` renders."""
    started = time.perf_counter()
    asyncio.run(fill(url, count))
    filled_s = time.perf_counter() - started
    os.environ.update(TOKENS_ENV)
    os.environ.pop("LEADFLOW_SLA_SERVICE_TOKEN", None)
    settings = Settings(
        env="development", config=CONFIG, database_url=url, kafka_bootstrap="127.0.0.1:9"
    )
    rows = []
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8003") as client:
        form = client.get("/console/sign-in").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None
        client.post("/console/sign-in", data={"csrf": csrf[1], "token": TEST_TOKEN})
        settled = asyncio.run(alerts_fired(url))
        first = client.get("/console")
        assert first.status_code == 200, first.text[:500]
        assert "lk_bench_" in first.text
        bearer = {"authorization": f"Bearer {TEST_TOKEN}"}
        for path in (*PAGES, *REPORTS):
            headers = bearer if path.startswith("/v1/") else {}
            times = []
            for _ in range(requests):
                began = time.perf_counter()
                answer = client.get(path, headers=headers)
                times.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200, (path, answer.status_code)
            times.sort()
            sys.stderr.write(f"{path}: p50 {statistics.median(times):.1f} ms\n")
            rows.append(
                {
                    "page": path,
                    "windows": count,
                    "bytes": len(answer.content),
                    "ms_p50": round(statistics.median(times), 1),
                    "ms_p95": round(times[int(len(times) * 0.95) - 1], 1),
                    "fill_s": round(filled_s, 1),
                    "alerts_settled_s": round(settled, 1),
                }
            )
    return rows


def reachable(server: str) -> bool:
    """Whether a PostgreSQL server answers."""
    try:
        drop_postgres_database(create_postgres_database(server))
    except Exception:
        return False
    return True


def main() -> None:
    """Measure on SQLite, and on PostgreSQL when a server answers; print and save."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL server URL (postgresql+asyncpg://...)")
    parser.add_argument("--windows", type=int, default=10_000, help="open windows")
    parser.add_argument("--requests", type=int, default=30, help="renders per page")
    parser.add_argument(
        "--sqlite-if-unreachable",
        action="store_true",
        help="measure on SQLite alone, with a note, when the --postgres server does not answer",
    )
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/console.db"
        upgrade(url)
        rows += [{"database": "sqlite", **r} for r in measure(url, args.windows, args.requests)]
    server = args.postgres or os.environ.get("LEADFLOW_TEST_POSTGRES_URL")
    if server and reachable(server):
        url = create_postgres_database(server)
        try:
            upgrade(url)
            found = measure(url, args.windows, args.requests)
            rows += [{"database": "postgresql", **r} for r in found]
        finally:
            drop_postgres_database(url)
    elif server and not args.sqlite_if_unreachable:
        sys.exit(f"PostgreSQL at {server} does not answer.")
    elif server:
        sys.stdout.write("note: PostgreSQL does not answer; SQLite only.\n")
    sys.stdout.write(f"{'database':<11} {'page':<20} {'windows':>7} {'p50 ms':>8} {'p95 ms':>8}\n")
    for r in rows:
        sys.stdout.write(
            f"{r['database']:<11} {r['page']:<20} {r['windows']:>7} {r['ms_p50']:>8.1f} "
            f"{r['ms_p95']:>8.1f}{'' if r['ms_p95'] < TARGET_MS else '  over 200 ms'}\n"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console_render.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
