"""Scoring on real SQLite and PostgreSQL: one profile per person, merges, locks, one MQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.db.engine import session_factory
from leadflow.db.tables import outbox
from leadflow.events import Envelope, LeadScored
from leadflow_intake.canonical import LeadBody, to_event
from leadflow_scoring import repository, service
from leadflow_scoring.app import router
from leadflow_scoring.tables import lead_profiles, lead_touches
from tests.fixtures.auth import AUTH, authorized
from tests.fixtures.keys import KEYS
from tests.unit.scoring.test_replay import EXAMPLE

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
MODEL = EXAMPLE.scoring


def event(lead: dict[str, Any], activity: str, at: datetime, delivery: str) -> Envelope:
    """The `lead.received` the intake publishes for a webhook."""
    body = LeadBody.model_validate({"event": "lead", "activity": activity, "lead": lead})
    return to_event(body, keys=KEYS, source="web", delivery_id=delivery, now=at)


def person(n: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A form lead with email and phone (30 fit points), and the two halves of its identity."""
    email, phone = f"buyer{n}@northwind.example", f"+1613555{n:04d}"
    full = {
        "email": email,
        "phone": phone,
        "job_title": "Operations Manager",
        "company": {"size": 150, "industry": "logistics"},
        "country": "CA",
    }
    return full, {"email": email}, {"phone": phone}


async def apply(engine: AsyncEngine, envelope: Envelope, now: datetime) -> LeadScored:
    """Score one event in its own transaction."""
    async with session_factory(engine)() as session, session.begin():
        return await service.score_received(session, envelope, MODEL, KEYS, now)


async def scored_events(engine: AsyncEngine) -> list[LeadScored]:
    """Every `lead.scored` in the outbox, in order."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.payload).order_by(outbox.c.id))
        events = [Envelope.from_bytes(bytes(r.payload)).data for r in rows]
    return [e for e in events if isinstance(e, LeadScored)]


async def live_profiles(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Profiles not merged into another."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(lead_profiles).where(lead_profiles.c.merged_into.is_(None))
        )
        return [dict(r._mapping) for r in rows]


async def test_a_call_from_a_known_number_joins_the_form_profile(engine: AsyncEngine) -> None:
    full, _, phone_only = person(1)
    form = event(full, "pricing_page", T0, "form")
    # A tracked call, as the callrail source gives it: answered, four minutes, a first call.
    tracked = {"call_duration_s": 240, "custom": {"answered": True, "first_call": True}}
    call = event({**phone_only, **tracked}, "phone_call", T0 + timedelta(hours=1), "call")

    first = await apply(engine, form, T0)
    second = await apply(engine, call, T0 + timedelta(hours=1))

    assert call.subject != form.subject
    assert second.lead_key == first.lead_key == form.subject
    assert second.identifiers == sorted([form.subject, call.subject])
    assert (first.tier, second.tier, second.touches) == ("watch", "mql", 2)
    assert [p["lead_key"] for p in await live_profiles(engine)] == [form.subject]
    [row] = await live_profiles(engine)
    assert row["grade"] == second.grade
    assert [r["rule"] for r in row["reasons"]] == [r.rule for r in second.reasons]
    assert row["first_touch"]["activity"] == "pricing_page"
    assert row["last_touch"]["activity"] == "phone_call"


async def test_an_event_linking_two_profiles_merges_them(engine: AsyncEngine) -> None:
    full, email_only, phone_only = person(2)
    by_phone = await apply(engine, event(phone_only, "demo_request", T0, "p"), T0)
    by_email = await apply(engine, event(email_only, "webinar", T0 + timedelta(minutes=1), "e"), T0)
    linked = await apply(engine, event(full, "webinar", T0 + timedelta(minutes=2), "l"), T0)

    assert by_phone.newly_qualified
    assert not by_email.qualified
    assert linked.lead_key == by_phone.lead_key
    assert linked.merged_from == [by_email.lead_key]
    assert linked.newly_qualified is False
    assert linked.tier == "mql"
    assert linked.touches == 3
    async with session_factory(engine)() as session:
        assert await repository.live_key(session, by_email.lead_key) == by_phone.lead_key
        assert await repository.live_key(session, "lk_unknown") is None
        count = await session.execute(
            select(func.count()).where(lead_touches.c.lead_key == by_phone.lead_key)
        )
        assert count.scalar_one() == 3


async def test_out_of_order_events_give_the_same_profile(engine: AsyncEngine) -> None:
    full, email_only, _ = person(3)
    older = event({**full, "job_title": "Analyst"}, "webinar", T0, "old")
    newer = event(
        {**email_only, "job_title": "Head of Operations"},
        "pricing_page",
        T0 + timedelta(days=1),
        "new",
    )

    await apply(engine, newer, T0 + timedelta(days=1))
    final = await apply(engine, older, T0 + timedelta(days=1))

    assert final.lead.job_title == "Head of Operations"
    assert final.last_touch is not None
    assert final.last_touch.activity == "pricing_page"
    assert final.first_touch is not None
    assert final.first_touch.activity == "webinar"


async def test_concurrent_events_of_one_person_qualify_it_once(engine: AsyncEngine) -> None:
    """Two partitions (email key, phone key) score one person at once: row locks serialise them."""
    people = [person(10 + n) for n in range(6)]
    for n, (full, _, _) in enumerate(people):
        await apply(engine, event(full, "form_fill", T0, f"first-{n}"), T0)
    later = T0 + timedelta(minutes=5)
    pairs = [
        (
            event(email_only, "free_trial", later, f"a-{n}"),
            event(phone_only, "free_trial", later, f"b-{n}"),
        )
        for n, (_, email_only, phone_only) in enumerate(people)
    ]

    await asyncio.gather(*(apply(engine, e, later) for pair in pairs for e in pair))

    scored = await scored_events(engine)
    newly = [s.lead_key for s in scored if s.newly_qualified]
    assert sorted(newly) == sorted(pair[0].subject for pair in pairs)
    assert len(await live_profiles(engine)) == len(people)
    final = {s.lead_key: s for s in scored}
    assert all(final[pair[0].subject].touches == 3 for pair in pairs)


async def test_the_profile_endpoint_answers_for_any_key(engine: AsyncEngine) -> None:
    from fastapi import FastAPI

    from leadflow.runtime import session_dep

    full, _, phone_only = person(4)
    await apply(engine, event(full, "pricing_page", T0, "f"), T0)
    call = event(phone_only, "inbound_call", T0, "c")
    await apply(engine, call, T0)
    app = authorized(FastAPI())
    app.include_router(router)

    async def sessions() -> Any:
        async with session_factory(engine)() as session:
            yield session

    app.dependency_overrides[session_dep] = sessions
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://scoring", headers=AUTH
    ) as client:
        by_phone = (await client.get(f"/v1/leads/{call.subject}/profile")).json()
        missing = await client.get("/v1/leads/lk_000000000000000000000000/profile")

    assert by_phone["lead_key"] != call.subject
    assert call.subject in by_phone["identifiers"]
    assert [t["activity"] for t in by_phone["touches"]] == ["pricing_page", "inbound_call"]
    assert by_phone["reasons"][-1]["group"] == "qualification"
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json() == {
        "type": "https://leadflow.dev/problems/unknown-lead",
        "title": "Not found",
        "status": 404,
        "detail": "No lead has the key 'lk_000000000000000000000000'.",
        "instance": "/v1/leads/lk_000000000000000000000000/profile",
    }
