"""Routing orchestration on real SQLite and PostgreSQL: decisions, caps, queue, reassignment."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.config import LeadflowConfig
from leadflow.db.engine import session_factory
from leadflow.db.tables import notifications, outbox
from leadflow.events import (
    Company,
    Envelope,
    Lead,
    LeadActivity,
    LeadAssigned,
    LeadUnassigned,
    SlaAlert,
    new_event,
)
from leadflow_router import admin_service, repository, service
from leadflow_router.book import Assignment
from leadflow_router.domain import Decision
from leadflow_router.repository import DecisionRecord
from leadflow_router.roster import AbsenceIn, RepOverride
from leadflow_router.tables import admin_audit, assignments
from tests.fixtures.routing import make_config, scored

# Thursday 10:00 UTC.
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
BIG = Lead(company=Company(size=5000, name="Bigco"), email="buyer@bigco.example")


async def route(
    engine: AsyncEngine, config: LeadflowConfig, lead_key: str, now: datetime, lead: Lead = BIG
) -> Decision | None:
    event = new_event(
        "lead.scored",
        scored(lead, lead_key=lead_key, at=now),
        source="/test",
        time=now,
        event_id=str(uuid.uuid4()),
    )
    async with session_factory(engine)() as session, session.begin():
        return await service.route_scored(session, event, config, now)


async def escalate(
    engine: AsyncEngine, config: LeadflowConfig, assigned: LeadAssigned, now: datetime
) -> Decision | None:
    alert = SlaAlert(
        lead_key=assigned.lead_key,
        assignment_id=assigned.assignment_id,
        stage="escalated",
        policy="hot",
        rep_id=assigned.rep_id,
        rep_name=assigned.rep_name,
        team=assigned.team,
        manager_email="grace@example.com",
        assigned_at=assigned.assigned_at,
        due_at=assigned.assigned_at,
        fired_at=now,
        late_by_s=60,
        message="escalated",
    )
    event = new_event("sla.escalated", alert, source="/test", time=now)
    async with session_factory(engine)() as session, session.begin():
        return await service.reassign_escalated(session, event, config, now)


async def outcome(engine: AsyncEngine, lead_key: str, kind: str, now: datetime) -> None:
    data = LeadActivity(lead_key=lead_key, activity=kind, occurred_at=now, source="crm")
    async with session_factory(engine)() as session, session.begin():
        await service.record_activity(
            session, new_event(f"lead.{kind}", data, source="/t", time=now)
        )


async def retry(engine: AsyncEngine, config: LeadflowConfig, now: datetime) -> int:
    async with session_factory(engine)() as session, session.begin():
        _, assigned = await service.retry_queued(session, config, now)
    return assigned


async def emitted(engine: AsyncEngine) -> list[Envelope]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.payload).order_by(outbox.c.id))
        return [Envelope.from_bytes(r.payload) for r in rows]


async def rows(engine: AsyncEngine, table: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(table).order_by(table.c.id))]


async def test_round_robin_turns_are_recorded_with_the_decision(engine: AsyncEngine) -> None:
    config = make_config()
    for i in range(4):
        await route(engine, config, f"lk_{i}", T0 + timedelta(seconds=i))

    events = await emitted(engine)
    assert [e.type for e in events] == ["lead.assigned"] * 4
    assert [e.data.rep_id for e in events] == ["ana", "ben", "chloe", "ana"]  # type: ignore[union-attr]
    assigned = await rows(engine, assignments)
    assert [(a["rep_id"], a["turn"]) for a in assigned] == [
        ("ana", 1),
        ("ben", 2),
        ("chloe", 3),
        ("ana", 4),
    ]
    [decision] = await _decisions(engine, "lk_1")
    assert decision.method == "round_robin"
    assert decision.kind == "route"
    assert decision.details == {"rotation": ["ben", "chloe", "ana"]}
    emails = [n for n in await rows(engine, notifications) if n["channel"] == "email"]
    assert [n["target"] for n in emails] == [
        f"{r}@example.com" for r in ("ana", "ben", "chloe", "ana")
    ]
    assert "buyer@bigco.example" in emails[0]["body"]
    assert "round robin gives Ana Silva the next turn" in emails[0]["body"]


async def test_a_lead_is_routed_once_whatever_is_redelivered(engine: AsyncEngine) -> None:
    config = make_config()
    assert await route(engine, config, "lk_once", T0) is not None
    assert await route(engine, config, "lk_once", T0 + timedelta(minutes=1)) is None

    assert len(await rows(engine, assignments)) == 1
    assert len(await emitted(engine)) == 1


async def test_daily_cap_queues_with_an_alert_then_the_next_local_day_assigns(
    engine: AsyncEngine,
) -> None:
    capped = {"max_per_day": 1, "timezone": "America/New_York"}
    config = make_config(reps={"ana": capped, "ben": capped, "chloe": capped})
    for i in range(4):
        await route(engine, config, f"lk_{i}", T0 + timedelta(minutes=i))

    events = await emitted(engine)
    assert [e.type for e in events] == ["lead.assigned"] * 3 + ["lead.unassigned"]
    queued = events[-1].data
    assert isinstance(queued, LeadUnassigned)
    assert queued.team == "enterprise"
    alert = [n for n in await rows(engine, notifications) if n["target"] == "grace@example.com"]
    assert [a["subject"] for a in alert] == [
        "Lead queued for team enterprise: nobody can take it now"
    ]
    assert "ana: daily cap reached (1/1 today)" in alert[0]["body"]

    # 04:59 UTC on Friday is still Thursday in New York: the caps still hold.
    assert await retry(engine, config, datetime(2026, 11, 27, 4, 59, tzinfo=UTC)) == 0
    # 05:00 UTC is midnight in New York: a new day, the lead leaves the queue.
    assert await retry(engine, config, datetime(2026, 11, 27, 5, 0, tzinfo=UTC)) == 1
    assert await retry(engine, config, datetime(2026, 11, 27, 5, 1, tzinfo=UTC)) == 0

    last = (await emitted(engine))[-1]
    assert last.type == "lead.assigned"
    assert isinstance(last.data, LeadAssigned)
    history = [(a.seq, a.status, a.close_reason) for a in await _history(engine, "lk_3")]
    assert history == [(1, "queued", "assigned_from_queue"), (2, "assigned", None)]


async def test_open_lead_cap_frees_up_when_the_crm_reports_an_outcome(
    engine: AsyncEngine,
) -> None:
    config = make_config(
        reps={"dev": {"max_open": 1}, "emma": {"max_open": 1}},
        teams={"smb": {"distribution": "least_loaded"}},
    )
    small = Lead(company=Company(size=10))
    for i in range(3):
        await route(engine, config, f"lk_{i}", T0, lead=small)
    assert [e.type for e in await emitted(engine)][-1] == "lead.unassigned"

    await outcome(engine, "lk_0", "accepted", T0)  # still open
    assert await retry(engine, config, T0 + timedelta(minutes=1)) == 0
    await outcome(engine, "lk_0", "rejected", T0)
    assert await retry(engine, config, T0 + timedelta(minutes=2)) == 1

    last = (await emitted(engine))[-1]
    assert isinstance(last.data, LeadAssigned)
    assert last.data.rep_id == "dev"
    [first] = await _history(engine, "lk_0")
    assert (first.close_reason, first.closed_at) == ("rejected", T0)


async def test_escalation_reassigns_excluding_everyone_who_missed(engine: AsyncEngine) -> None:
    config = make_config()
    await route(engine, config, "lk_esc", T0)
    [first] = await emitted(engine)
    assert isinstance(first.data, LeadAssigned)

    await escalate(engine, config, first.data, T0 + timedelta(minutes=10))
    second = (await emitted(engine))[-1]
    assert second.type == "lead.reassigned"
    assert isinstance(second.data, LeadAssigned)
    assert (second.data.rep_id, second.data.previous_rep_ids) == ("ben", ["ana"])

    # A late copy of the first escalation changes nothing: the lead has moved on.
    assert await escalate(engine, config, first.data, T0 + timedelta(minutes=11)) is None

    await escalate(engine, config, second.data, T0 + timedelta(minutes=20))
    third = (await emitted(engine))[-1]
    assert isinstance(third.data, LeadAssigned)
    assert (third.data.rep_id, third.data.previous_rep_ids) == ("chloe", ["ana", "ben"])

    await escalate(engine, config, third.data, T0 + timedelta(minutes=30))
    fourth = (await emitted(engine))[-1]
    assert fourth.type == "lead.unassigned"

    history = await _history(engine, "lk_esc")
    assert [(h.seq, h.rep_id, h.status, h.close_reason) for h in history] == [
        (1, "ana", "assigned", "escalated"),
        (2, "ben", "assigned", "escalated"),
        (3, "chloe", "assigned", "escalated"),
        (4, None, "queued", None),
    ]
    last = (await _decisions(engine, "lk_esc"))[-1]
    assert last.kind == "reassign"
    assert last.skipped == dict.fromkeys(
        ["ana", "ben", "chloe"], "already missed this lead's follow-up"
    )
    # The queued lead is not handed back to someone who missed it.
    assert await retry(engine, config, T0 + timedelta(hours=1)) == 0


async def test_run_time_overrides_and_absences_change_routing_and_are_audited(
    engine: AsyncEngine,
) -> None:
    config = make_config()
    async with session_factory(engine)() as session, session.begin():
        await admin_service.change_rep(session, "ana", RepOverride(active=False), "ops", T0)
        await admin_service.add_absence(
            session,
            "ben",
            AbsenceIn(start=T0 - timedelta(hours=1), end=T0 + timedelta(hours=1), note="doctor"),
            "ops",
            T0,
        )

    decision = await route(engine, config, "lk_a", T0)
    assert decision is not None
    assert decision.rep_id == "chloe"
    assert decision.skipped == {
        "ana": "inactive",
        "ben": "out of office until 2026-11-26 11:00 UTC (doctor)",
    }
    later = await route(engine, config, "lk_b", T0 + timedelta(hours=2))
    assert later is not None
    assert later.rep_id == "ben"

    audit = await rows(engine, admin_audit)
    assert [(a["actor"], a["action"], a["rep_id"]) for a in audit] == [
        ("ops", "rep.update", "ana"),
        ("ops", "rep.out_of_office.add", "ben"),
    ]
    assert (audit[0]["before"], audit[0]["after"]) == ({}, {"active": False})


async def test_priority_account_goes_to_the_owner_and_notifies_manager_and_crm(
    engine: AsyncEngine,
) -> None:
    config = make_config(
        accounts=[{"name": "Acme", "domains": ["acme.com"], "owner": "felix", "priority": True}],
        reps={"felix": {"webhook": "https://hooks.example/felix"}},
        routing={"notify": {"crm_webhook": "https://crm.example/leadflow"}},
    )
    lead = Lead(email="cto@acme.com", company=Company(name="Acme", size=5000))

    decision = await route(engine, config, "lk_acme", T0, lead=lead)

    assert decision is not None
    assert (decision.rep_id, decision.rule, decision.account) == ("felix", "account-owner", "Acme")
    sent = {(n["channel"], n["target"]): n for n in await rows(engine, notifications)}
    assert set(sent) == {
        ("email", "felix@example.com"),
        ("webhook", "https://hooks.example/felix"),
        ("webhook", "https://crm.example/leadflow"),
        ("email", "henry@example.com"),  # felix sits in no team: the fallback team's manager
    }
    crm = sent[("webhook", "https://crm.example/leadflow")]["payload"]
    assert crm["type"] == "lead.assigned"
    assert crm["assignment"]["rep_id"] == "felix"
    assert crm["lead"]["email"] == "cto@acme.com"
    assert crm["why_url"].endswith("/v1/leads/lk_acme/routing")
    manager = sent[("email", "henry@example.com")]
    assert manager["subject"] == "Priority account Acme: new lead assigned to Felix Wagner"


async def test_weighted_by_conversion_reads_measured_outcomes(engine: AsyncEngine) -> None:
    config = make_config(
        teams={"enterprise": {"distribution": "weighted", "weights": "conversion"}}
    )
    for i in range(6):
        await route(engine, config, f"lk_{i}", T0 + timedelta(minutes=i))
    by_rep: dict[str, list[str]] = {}
    for a in await rows(engine, assignments):
        by_rep.setdefault(a["rep_id"], []).append(a["lead_key"])
    assert {r: len(v) for r, v in by_rep.items()} == {"ana": 2, "ben": 2, "chloe": 2}
    for lead_key in by_rep["chloe"]:
        await outcome(engine, lead_key, "converted", T0 + timedelta(hours=1))
    await outcome(engine, by_rep["chloe"][0], "won", T0 + timedelta(hours=2))

    async with session_factory(engine)() as session:
        stats = await repository.conversion_stats(session, ["ana", "ben", "chloe"], T0)
    assert stats == {"ana": (2, 0), "ben": (2, 0), "chloe": (2, 2)}

    decision = await route(engine, config, "lk_next", T0 + timedelta(hours=3))
    assert decision is not None
    assert decision.rep_id == "chloe"
    assert decision.details["weights"] == {"ana": 0.25, "ben": 0.25, "chloe": 0.75}


async def test_concurrent_decisions_never_repeat_a_turn(engine: AsyncEngine) -> None:
    config = make_config()
    await asyncio.gather(
        *(route(engine, config, f"lk_{i}", T0 + timedelta(seconds=i)) for i in range(30))
    )

    assigned = sorted(await rows(engine, assignments), key=lambda a: a["turn"])
    assert [a["turn"] for a in assigned] == list(range(1, 31))
    reps = [a["rep_id"] for a in assigned]
    assert reps == ["ana", "ben", "chloe"] * 10


async def _history(engine: AsyncEngine, lead_key: str) -> list[Assignment]:
    async with session_factory(engine)() as session:
        return await repository.history(session, lead_key)


async def _decisions(engine: AsyncEngine, lead_key: str) -> list[DecisionRecord]:
    async with session_factory(engine)() as session:
        return await repository.decisions(session, lead_key)
