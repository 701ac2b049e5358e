"""`/v1/reports/tiers` and `leadflow report tiers` on lifecycles the reporting consumer
folded from events, on SQLite and PostgreSQL: shares per period and source, targets from
the configuration, drift flagged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.config import Reporting
from leadflow.db.engine import create_engine, session_factory
from leadflow.events import Envelope, Lead, LeadReceived, LeadScored, Tier, new_event
from leadflow.settings import Settings
from leadflow_sla.reporting import api, service
from leadflow_sla.reporting.commands import report
from tests.fixtures.auth import AUTH, authorized
from tests.fixtures.stack import CONFIG

# Monday 2 November 2026 (ISO week 45); the second week starts on the 9th.
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NURTURE: list[Tier] = ["nurture"]
REPORTING = Reporting(tier_targets={"mql": 0.05, "watch": 0.10}, tier_min_leads=10)


def received(key: str, at: datetime, source: str) -> Envelope:
    data = LeadReceived(
        lead_key=key,
        source=source,
        source_kind="standard",
        delivery_id=f"d-{key}",
        received_at=at,
        lead=Lead(campaign=f"{source}-q4"),
    )
    return new_event("lead.received", data, source="/t", time=at, event_id=f"r-{key}")


def scored(key: str, at: datetime, tier: Tier, n: int = 0) -> Envelope:
    data = LeadScored(
        lead_key=key,
        model_version="v",
        score=50,
        fit=25,
        engagement=25,
        tier=tier,
        qualified=tier == "mql",
        newly_qualified=tier == "mql",
        reasons=[],
        scored_at=at,
        received_at=at,
        source="web",
        lead=Lead(),
    )
    return new_event("lead.scored", data, source="/t", time=at, event_id=f"s-{key}-{n}")


def leads(source: str, at: datetime, *tiers: Tier) -> list[Envelope]:
    """A lead of `source` per tier, each received and scored into it."""
    events: list[Envelope] = []
    for i, tier in enumerate(tiers):
        key = f"lk_{source}_{at:%d}_{i}"
        events += [received(key, at, source), scored(key, at + timedelta(minutes=1), tier)]
    return events


def story() -> list[Envelope]:
    week2 = T0 + timedelta(days=7)
    web = leads("web", T0, "mql", "watch", "watch", *(NURTURE * 17))  # 5 %, 10 %
    partner = leads("partner", T0, "mql", "mql", "mql", *(NURTURE * 7))  # 30 %, no watch
    late = leads("web", week2, "watch", "nurture")  # too few to flag
    # An MQL whose score falls back to watch still counts as an MQL.
    fallen = scored("lk_partner_02_0", T0 + timedelta(hours=2), "watch", 1)
    return [*web, *partner, *late, fallen]


async def fold(engine: AsyncEngine, events: list[Envelope]) -> None:
    async with session_factory(engine)() as session, session.begin():
        await service.apply_events(session, events, REPORTING, T0 + timedelta(days=10))


@pytest.fixture
async def reports(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    await fold(engine, story())
    app = authorized(FastAPI())
    app.include_router(api.router)
    app.state.runtime = SimpleNamespace(
        settings=SimpleNamespace(app=SimpleNamespace(reporting=REPORTING)),
        sessions=session_factory(engine),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://reports", headers=AUTH
    ) as client:
        yield client


def shares(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], tuple[int, int, str]]:
    return {(r["period"], r["key"], r["tier"]): (r["leads"], r["total"], r["status"]) for r in rows}


async def test_tier_shares_per_week_and_source_are_flagged_off_target(
    reports: httpx.AsyncClient,
) -> None:
    answer = await reports.get("/v1/reports/tiers", params={"period": "week", "by": "source"})

    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert (doc["report"], doc["leads"], doc["period"], doc["by"]) == (
        "tiers",
        32,
        "week",
        "source",
    )
    assert doc["flagged"] == 2
    assert shares(doc["rows"]) == {
        ("2026-W45", "partner", "mql"): (3, 10, "above"),
        ("2026-W45", "partner", "watch"): (0, 10, "below"),
        ("2026-W45", "partner", "nurture"): (7, 10, "no target"),
        ("2026-W45", "web", "mql"): (1, 20, "on target"),
        ("2026-W45", "web", "watch"): (2, 20, "on target"),
        ("2026-W45", "web", "nurture"): (17, 20, "no target"),
        ("2026-W46", "web", "mql"): (0, 2, "too few leads"),
        ("2026-W46", "web", "watch"): (1, 2, "too few leads"),
        ("2026-W46", "web", "nurture"): (1, 2, "no target"),
    }
    partner_mql = next(r for r in doc["rows"] if r["key"] == "partner" and r["tier"] == "mql")
    assert (partner_mql["share"], partner_mql["target"], partner_mql["drift"]) == (0.3, 0.05, 0.25)


async def test_filters_periods_and_campaigns_narrow_the_report(reports: httpx.AsyncClient) -> None:
    params = {"period": "month", "by": "campaign", "source": "web", "to": "2026-11-08"}
    doc = (await reports.get("/v1/reports/tiers", params=params)).json()

    assert doc["leads"] == 20
    assert {(r["period"], r["key"]) for r in doc["rows"]} == {("2026-11", "web-q4")}
    assert {r["tier"]: r["status"] for r in doc["overall"]}["watch"] == "on target"


async def test_unknown_periods_and_groupings_are_refused(reports: httpx.AsyncClient) -> None:
    for params in ({"period": "year"}, {"by": "rep"}, {"from": "soon"}):
        answer = await reports.get("/v1/reports/tiers", params=params)
        assert answer.status_code == 422, params


async def _fold_into(url: str) -> None:
    engine = create_engine(url)
    try:
        await fold(engine, story())
    finally:
        await engine.dispose()


def test_the_command_reads_the_targets_from_the_configuration(
    database_url: str, tmp_path: Path
) -> None:
    asyncio.run(_fold_into(database_url))
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    config["reporting"] |= {"tier_targets": {"mql": 0.05, "watch": 0.1}, "tier_min_leads": 10}
    path = tmp_path / "leadflow.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    settings = Settings(config=path, database_url=database_url)

    doc = orjson.loads(report("tiers", settings, "json", by="source", period="week"))
    table = report("tiers", settings, "table", period="day")

    assert doc["flagged"] == 2
    assert "Tier shares by day and all" in table
    line = next(x for x in table.splitlines() if x.split()[:3] == ["2026-11-02", "(all)", "mql"])
    assert line.split() == [
        "2026-11-02",
        "(all)",
        "mql",
        "4",
        "30",
        "13.3%",
        "5.0%",
        "8.3%",
        "above",
    ]
