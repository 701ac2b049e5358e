"""The router on the database and `leadflow simulate`'s router in memory decide alike.

Random configurations (distributions, caps, named reps that queue or overflow, working
hours, language skills, an account, routed tiers: the watch list, a priority account's
below the bar; sticky rules keeping a company's leads with its rep) and random streams of
batches (scores, CRM outcomes, escalations, hours or days apart) go through the
consumers' batch handler on SQLite and PostgreSQL, a batch per transaction, and through
the simulation's in-memory router (`leadflow_router.replay.Replay`), one event at a time.
Every decision, assignment row, round-robin pointer and decision record must be the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.config import LeadflowConfig
from leadflow.db.engine import create_engine, session_factory
from leadflow.db.tables import notifications, outbox
from leadflow.events import (
    Company,
    Envelope,
    Lead,
    LeadActivity,
    LeadScored,
    SlaAlert,
    Tier,
    new_event,
)
from leadflow_router import service
from leadflow_router.availability import skip_kind
from leadflow_router.book import Assignment
from leadflow_router.domain import Decision
from leadflow_router.memory import InMemoryRoutingStore
from leadflow_router.replay import Replay
from leadflow_router.tables import (
    assignments,
    round_robin_pointers,
    routed_leads,
    routing_decisions,
)
from tests.fixtures.databases import migrated_database_url
from tests.fixtures.routing import REPS, make_config, scored

# A Wednesday, 07:00 UTC: batches hours and days apart cross shifts, days and a weekend.
T0 = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
TABLES = (assignments, routing_decisions, round_robin_pointers, routed_leads, outbox, notifications)
KEYS = [f"lk_{i}" for i in range(12)]
ACCOUNTS = [{"name": "Acme", "domains": ["acme.example"], "owner": "chloe", "priority": True}]
WATCH = {"field": "score.tier", "equals": "watch"}
SHIFT = [{"days": ["mon-fri"], "start": "09:00", "end": "17:30"}]
DISTRIBUTIONS: list[dict[str, Any]] = [
    {"distribution": "round_robin"},
    {"distribution": "least_loaded"},
    {"distribution": "weighted"},
    {"distribution": "weighted", "weights": "conversion"},
]


@st.composite
def configs(draw: st.DrawFn) -> LeadflowConfig:
    """The routing fixture's teams and rules with drawn distributions, caps and shifts."""
    reps: dict[str, dict[str, Any]] = {}
    for rep_id in REPS:
        rep: dict[str, Any] = {}
        for cap in ("max_open", "max_per_day"):
            limit = draw(st.sampled_from([None, 1, 1, 2]))
            if limit is not None:
                rep[cap] = limit
        if draw(st.booleans()):
            rep |= {"working_hours": SHIFT, "timezone": "Europe/London"}
        if rep_id in ("ana", "ben") and draw(st.booleans()):
            rep |= {"languages": ["en"], "weight": 2.0}
        reps[rep_id] = rep
    skills = ["language"] if draw(st.booleans()) else []
    teams = {
        "enterprise": draw(st.sampled_from(DISTRIBUTIONS)) | {"skills": skills},
        "smb": draw(st.sampled_from(DISTRIBUTIONS)),
    }
    overflow = st.sampled_from(["queue", "next_rule"])
    rules: list[dict[str, Any]] = [
        {
            "name": "enterprise-size",
            "team": "enterprise",
            "when": [{"field": "lead.company.size", "gte": 1000}],
            "when_unavailable": draw(overflow),
            "sticky": draw(st.booleans()),
        },
        {
            "name": "dach-to-felix",
            "rep": "felix",
            "when": [{"field": "lead.country", "in": ["DE", "AT", "CH"]}],
            "when_unavailable": draw(overflow),
        },
        {
            "name": "partners-to-gus",
            "rep": "gus",
            "when": [{"field": "source", "equals": "partner"}],
            "when_unavailable": draw(overflow),
        },
    ]
    # Watch-listed leads too, sometimes (to a team of their own rule), and a priority
    # account's below the bar: upgrades route a person again.
    tiers = draw(st.sampled_from([["mql"], ["mql", "watch"]]))
    if "watch" in tiers:
        rules.insert(0, {"name": "watch-list", "team": "smb", "when": [WATCH]})
    # Sometimes a last rule takes the rest to smb, maybe sticky (instead of the fallback).
    if draw(st.booleans()):
        rules.append({"name": "everyone-else", "team": "smb", "sticky": draw(st.booleans())})
    routing = {"tiers": tiers, "priority_account_tiers": draw(st.sampled_from([[], ["nurture"]]))}
    return make_config(reps=reps, teams=teams, rules=rules, accounts=ACCOUNTS, routing=routing)


@dataclass(frozen=True)
class Score:
    key: int
    size: int
    country: str
    language: str | None
    source: str
    domain: str
    tier: Tier


@dataclass(frozen=True)
class Outcome:
    key: int
    kind: str


@dataclass(frozen=True)
class Escalation:
    key: int


Step = Score | Outcome | Escalation

steps = st.one_of(
    st.builds(
        Score,
        key=st.integers(0, len(KEYS) - 1),
        size=st.sampled_from([10, 5000]),
        country=st.sampled_from(["PT", "DE", "GB"]),
        language=st.sampled_from([None, "en", "fr"]),
        source=st.sampled_from(["web", "web", "partner"]),
        domain=st.sampled_from(
            ["example.com", "example.com", "beta.example", "acme.example", "gmail.com"]
        ),
        tier=st.sampled_from(["mql", "mql", "watch", "nurture"]),
    ),
    st.builds(
        Outcome,
        key=st.integers(0, len(KEYS) - 1),
        kind=st.sampled_from(["rejected", "converted", "won", "lost", "contacted"]),
    ),
    st.builds(Escalation, key=st.integers(0, len(KEYS) - 1)),
)
# Each batch: hours since the one before, and its events.
streams = st.lists(
    st.tuples(st.sampled_from([0, 1, 3, 9, 26]), st.lists(steps, min_size=1, max_size=8)),
    min_size=1,
    max_size=10,
)


def envelope(step: Step, event_id: str, now: datetime, memory: InMemoryRoutingStore) -> Envelope:
    """The event a step stands for; an escalation names the lead's current assignment in
    memory (or one the router will ignore, when the lead has none open)."""
    key = KEYS[step.key]
    if isinstance(step, Score):
        company = Company(size=step.size, domain=step.domain)
        lead = Lead(
            email=f"{key}@{step.domain}",
            country=step.country,
            language=step.language,
            company=company,
        )
        data = scored(lead, lead_key=key, source=step.source, tier=step.tier, at=now)
        return new_event("lead.scored", data, source="/test", time=now, event_id=event_id)
    if isinstance(step, Outcome):
        activity = LeadActivity(lead_key=key, activity=step.kind, occurred_at=now, source="crm")
        return new_event(f"lead.{step.kind}", activity, source="/test", time=now, event_id=event_id)
    rows = [row for row in memory.assignments if row.lead_key == key]
    current = rows[-1] if rows else None
    alert = SlaAlert(
        lead_key=key,
        assignment_id=current.assignment_id if current else "never-assigned",
        stage="escalated",
        policy="hot",
        rep_id=(current.rep_id if current else None) or "ana",
        rep_name="someone",
        team=current.team if current else "enterprise",
        manager_email="grace@example.com",
        assigned_at=now,
        due_at=now,
        fired_at=now,
        late_by_s=60,
        message="escalated",
    )
    return new_event("sla.escalated", alert, source="/test", time=now, event_id=event_id)


def simulate(replay: Replay, event: Envelope, now: datetime) -> Decision | None:
    """One event through the simulation's router: scores as `leadflow simulate` sends them."""
    if isinstance(event.data, LeadScored):
        return replay.route(event.data, event.id, now)
    [decision] = replay.apply([event], now).decisions
    return decision


def row(a: Assignment | dict[str, Any]) -> tuple[Any, ...]:
    """An assignment row's columns (its id left out)."""
    get = a.get if isinstance(a, dict) else lambda name: getattr(a, name)
    names = ("assignment_id", "lead_key", "seq", "rep_id", "team", "rule", "status")
    later = ("assigned_at", "turn", "closed_at", "close_reason", "converted_at", "domain")
    return tuple(get(name) for name in (*names, *later))


async def compare(url: str, config: LeadflowConfig, stream: list[tuple[int, list[Step]]]) -> None:
    """Run the stream batch by batch on the database and in memory; compare as it goes."""
    engine = create_engine(url)
    try:
        await clear(engine)
        replay = Replay(config)
        now = T0
        for number, (hours, batch_steps) in enumerate(stream):
            now += timedelta(hours=hours)
            events = [
                envelope(step, f"b{number}-{i}", now, replay.store)
                for i, step in enumerate(batch_steps)
            ]
            async with session_factory(engine)() as session, session.begin():
                live = await service.apply_events(session, events, config, now)
            assert live == [simulate(replay, e, now) for e in events]
            for decision in live:
                if decision is not None:
                    hypothesis.event(f"{decision.method} {decision.outcome}")
                    for why in decision.skipped.values():
                        hypothesis.event(f"skipped: {skip_kind(why)}")
        await same_state(engine, replay.store)
    finally:
        await engine.dispose()


async def same_state(engine: AsyncEngine, memory: InMemoryRoutingStore) -> None:
    """The router's tables hold what the in-memory store holds."""
    async with engine.connect() as conn:
        stored = (await conn.execute(select(assignments).order_by(assignments.c.id))).all()
        pointers = (await conn.execute(select(round_robin_pointers))).all()
        decisions = (
            await conn.execute(select(routing_decisions).order_by(routing_decisions.c.id))
        ).all()
        events = (await conn.execute(select(outbox.c.key).order_by(outbox.c.id))).all()
        leads = (await conn.execute(select(routed_leads.c.lead_key, routed_leads.c.scored))).all()
    assert [row(dict(r._mapping)) for r in stored] == [row(a) for a in memory.assignments]
    turns = await memory.turns({str(p.team) for p in pointers} | {"enterprise", "smb"})
    assert {p.team: (p.last_rep_id, p.turns) for p in pointers} == {
        team: (t.last_rep_id, t.turns) for team, t in turns.items()
    }
    assert [(d.assignment_id, d.kind, d.reason) for d in decisions] == [
        (d.assignment.assignment_id, d.kind, d.decision.reason) for d in memory.decided
    ]
    assert [e.key for e in events] == [e.subject for e in memory.events]
    kept = await memory.routed_leads(KEYS)
    assert {str(r.lead_key): r.scored["tier"] for r in leads} == {
        key: scored.tier for key, scored in kept.items()
    }


async def clear(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        for table in TABLES:
            await session.execute(delete(table))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def shared_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One migrated database for every example (each example clears the router's tables)."""
    yield from migrated_database_url(request.param, Path(tmp_path_factory.mktemp("router")))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(config=configs(), stream=streams)
def test_the_simulation_routes_as_the_router_does(
    shared_url: str, config: LeadflowConfig, stream: list[tuple[int, list[Step]]]
) -> None:
    asyncio.run(compare(shared_url, config, stream))
