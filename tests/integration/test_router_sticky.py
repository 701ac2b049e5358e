"""Sticky ownership on SQLite and PostgreSQL: a company's next lead goes to the rep who holds
an open lead of it, found by the assignments' company domain; the why endpoint and
lead.assigned say so."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.config import LeadflowConfig
from leadflow.db.engine import session_factory
from leadflow.events import Company, Envelope, Lead, LeadActivity, LeadAssigned, new_event
from leadflow.problems import install_problem_handlers
from leadflow.runtime import get_runtime
from leadflow_router import api, service
from leadflow_router.domain import Decision
from leadflow_router.tables import assignments, routing_decisions
from tests.fixtures.auth import AUTH, authorized
from tests.fixtures.routing import make_config, scored
from tests.integration.test_routing_service import emitted

# Thursday 10:00 UTC.
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
RULES: list[dict[str, Any]] = [
    {
        "name": "enterprise-size",
        "team": "enterprise",
        "sticky": True,
        "when": [{"field": "lead.company.size", "gte": 1000}],
    },
]
STICKY = make_config(rules=RULES)
# Ana away on the day of the second batch.
ANA_AWAY = make_config(
    rules=RULES, reps={"ana": {"out_of_office": [{"start": "2026-11-26", "end": "2026-11-27"}]}}
)


def score(key: str, domain: str | None = None, email: str | None = None) -> Envelope:
    lead = Lead(email=email or f"{key}@gmail.com", company=Company(size=5000, domain=domain))
    data = scored(lead, lead_key=key, at=T0)
    return new_event("lead.scored", data, source="/test", time=T0, event_id=f"score-{key}")


def lost(key: str) -> Envelope:
    data = LeadActivity(lead_key=key, activity="lost", occurred_at=T0, source="crm")
    return new_event("lead.lost", data, source="/test", time=T0, event_id=f"lost-{key}")


async def apply(
    engine: AsyncEngine, events: Sequence[Envelope], config: LeadflowConfig = STICKY
) -> list[tuple[str | None, str]]:
    async with session_factory(engine)() as session, session.begin():
        decisions = await service.apply_events(session, events, config, T0)
    return [(d.rep_id, d.method) for d in decisions if isinstance(d, Decision)]


def app_for(engine: AsyncEngine) -> FastAPI:
    app = authorized(FastAPI())
    install_problem_handlers(app)
    app.include_router(api.router)
    runtime = SimpleNamespace(
        settings=SimpleNamespace(app=STICKY), sessions=session_factory(engine)
    )
    app.dependency_overrides[get_runtime] = lambda: runtime
    return app


async def test_a_companys_leads_stay_with_the_rep_who_holds_one(engine: AsyncEngine) -> None:
    assert await apply(engine, [score("a1", "https://www.Acme.com/")]) == [("ana", "round_robin")]

    # The owner is read from the database; a new company's second lead follows its first.
    assert await apply(
        engine,
        [
            score("o1", "other.com"),
            score("a2", email="kim@acme.com"),
            score("n1", "new.com"),
            score("n2", "NEW.com"),
            score("g1"),  # gmail.com: no company to keep
        ],
    ) == [
        ("ben", "round_robin"),
        ("ana", "sticky"),
        ("chloe", "round_robin"),
        ("chloe", "sticky"),
        ("ana", "round_robin"),
    ]

    async with engine.connect() as conn:
        rows = await conn.execute(
            select(assignments.c.lead_key, assignments.c.domain).order_by(assignments.c.id)
        )
        assert rows.all() == [
            ("a1", "acme.com"),
            ("o1", "other.com"),
            ("a2", "acme.com"),
            ("n1", "new.com"),
            ("n2", "new.com"),
            ("g1", None),
        ]
        decided = await conn.execute(
            select(routing_decisions.c.method, routing_decisions.c.reason).where(
                routing_decisions.c.lead_key == "a2"
            )
        )
        assert decided.all() == [("sticky", "sticky: owner of acme.com is Ana Silva")]
    assigned = {e.data.lead_key: e.data for e in await emitted(engine)}
    assert isinstance(assigned["a2"], LeadAssigned)
    assert (assigned["a2"].rep_id, assigned["a2"].reason) == (
        "ana",
        "sticky: owner of acme.com is Ana Silva",
    )

    transport = httpx.ASGITransport(app=app_for(engine))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://router", headers=AUTH
    ) as client:
        why = (await client.get("/v1/leads/a2/routing")).json()
    assert why["summary"] == "Assigned to Ana Silva: sticky: owner of acme.com is Ana Silva."
    [decision] = why["decisions"]
    assert (decision["method"], decision["rule"]) == ("sticky", "enterprise-size")


async def test_an_owner_away_or_done_leaves_the_lead_to_the_distribution(
    engine: AsyncEngine,
) -> None:
    await apply(engine, [score("a1", "acme.com"), score("b1", "beta.com")])

    # Ana is out of office: the rule's round robin decides, and says why.
    assert await apply(engine, [score("a2", "acme.com")], ANA_AWAY) == [("chloe", "round_robin")]
    async with engine.connect() as conn:
        reason = await conn.scalar(
            select(routing_decisions.c.reason).where(routing_decisions.c.lead_key == "a2")
        )
    assert str(reason).startswith("sticky: Ana Silva (owner of acme.com) cannot take it: out of")

    # Ben's lead of beta.com is lost: beta.com has no owner any more.
    assert await apply(engine, [lost("b1"), score("b2", "beta.com")]) == [("ana", "round_robin")]
    # Acme's leads are with Ana (first) and Chloé: the earliest holder keeps the next one.
    assert await apply(engine, [score("a3", "acme.com")]) == [("ana", "sticky")]
