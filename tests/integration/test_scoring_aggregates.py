"""A person with many touches on real SQLite and PostgreSQL: scored from their aggregate.

The database path must give what the in-memory path (`Replay`, used by simulate) gives
for the same events, must not need the touch history to score an event, folds a person
again from their touches only after the engagement rules change, and picks up profiles
written before aggregates existed (the migration's backfill).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from prometheus_client import REGISTRY
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.config import Scoring
from leadflow.db.engine import create_engine, session_factory
from leadflow.db.migrate import alembic_config, upgrade
from leadflow.events import Envelope, Lead, LeadReceived, LeadScored
from leadflow_intake.canonical import LeadBody, to_event
from leadflow_scoring import aggregate, service
from leadflow_scoring.domain import score
from leadflow_scoring.identity import identifiers_of
from leadflow_scoring.profile import Touch, build_profile, lead_fields, touch_detail
from leadflow_scoring.replay import Replay
from leadflow_scoring.tables import lead_identifiers, lead_profiles, lead_touches
from tests.fixtures.databases import (
    create_postgres_database,
    drop_postgres_database,
    postgres_server_url,
)
from tests.fixtures.keys import KEYS
from tests.unit.scoring.test_replay import EXAMPLE

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MODEL = EXAMPLE.scoring
# More than the recent window, so most touches are tallied; a mix the example model
# scores (repeat visits count from the second, clicks and pricing pages are capped).
ACTIVITIES = ["page_visit", "pricing_page", "email_click", "webinar", "page_visit", "free_trial"]
MANY = aggregate.RECENT_TOUCHES + 70


def events(person: int, count: int, start: int = 0) -> list[Envelope]:
    """`count` webhooks of one person, an hour apart; the first ones give their details."""
    email = f"buyer{person}@northwind.example"
    found = []
    for i in range(start, start + count):
        lead: dict[str, Any] = {"email": email}
        if i % 7 == 0:
            lead.update(job_title=["Analyst", "Head of Operations"][i % 2], country="CA")
        if i % 11 == 0:
            lead["company"] = {"size": 150 + i, "industry": "logistics"}
        body = LeadBody.model_validate(
            {"event": "lead", "activity": ACTIVITIES[i % len(ACTIVITIES)], "lead": lead}
        )
        at = T0 + timedelta(hours=i)
        found.append(to_event(body, keys=KEYS, source="web", delivery_id=f"p{person}-{i}", now=at))
    return found


def received(envelope: Envelope) -> LeadReceived:
    """The event's `lead.received`."""
    assert isinstance(envelope.data, LeadReceived)
    return envelope.data


async def apply(engine: AsyncEngine, envelope: Envelope, model: Scoring = MODEL) -> LeadScored:
    """Score one event in its own transaction, at the time it was received."""
    async with session_factory(engine)() as session, session.begin():
        return await service.score_received(
            session, envelope, model, KEYS, received(envelope).received_at
        )


def replayed(stream: list[Envelope], model: Scoring = MODEL) -> list[LeadScored]:
    """The same events through the in-memory path."""
    replay = Replay(model, KEYS)
    return [replay.apply(received(e), e.id, received(e).received_at) for e in stream]


def refolds() -> float:
    """How many aggregates were folded again from touches so far."""
    return REGISTRY.get_sample_value("leadflow_scoring_aggregates_refolded_total") or 0.0


async def test_a_person_with_many_touches_scores_as_in_memory(engine: AsyncEngine) -> None:
    stream = events(1, MANY)
    before = refolds()

    scored = [await apply(engine, e) for e in stream]

    assert scored == replayed(stream)
    assert refolds() == before
    final = scored[-1]
    assert final.touches == MANY
    touches = [
        Touch(r.activity, r.source, r.received_at, touch_detail(r.lead), e.id, lead_fields(r.lead))
        for e in stream
        for r in [received(e)]
    ]
    person = build_profile(touches)
    everything = score(MODEL, person.fields, touches, final.scored_at)
    assert final.lead == Lead.model_validate(person.fields)
    # A reason per recent touch and one per rule for the older ones, not one per touch.
    recent_from = received(stream[-aggregate.RECENT_TOUCHES]).received_at
    engagement = [r for r in final.reasons if r.group == "engagement" and r.occurred_at]
    tallied = [r for r in engagement if "earlier touches" in r.detail]
    assert tallied
    assert all(
        r.occurred_at is not None and r.occurred_at >= recent_from
        for r in engagement
        if r not in tallied
    )
    assert len(final.reasons) < len(everything.reasons) - MANY // 2
    assert (final.fit, final.engagement, final.tier, final.grade) == (
        everything.fit,
        everything.engagement,
        everything.tier,
        everything.grade,
    )


async def test_scoring_an_event_does_not_read_the_touch_history(engine: AsyncEngine) -> None:
    stream = events(2, MANY + 1)
    for e in stream[:-1]:
        await apply(engine, e)
    async with engine.begin() as conn:
        # Gone (e.g. by a retention policy): the next event must not need them.
        await conn.execute(delete(lead_touches))

    last = await apply(engine, stream[-1])

    assert last == replayed(stream)[-1]


async def test_new_engagement_rules_fold_the_person_again_from_their_touches(
    engine: AsyncEngine,
) -> None:
    stream = events(3, MANY + 1)
    for e in stream[:-1]:
        await apply(engine, e)
    rules = [
        r.model_copy(update={"points": 7}) if r.name == "pricing-page" else r for r in MODEL.rules
    ]
    changed = MODEL.model_copy(update={"rules": rules})
    before = refolds()

    last = await apply(engine, stream[-1], changed)

    assert refolds() == before + 1
    assert last == replayed(stream, changed)[-1]


# --- profiles written before aggregates --------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def previous_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database migrated up to the revision before scoring's aggregates."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revision = script.get_revision("f7_scoring")
    assert revision is not None
    assert isinstance(revision.down_revision, str)
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'leadflow.db'}"
        upgrade(url, revision.down_revision)
        yield url
        return
    server = postgres_server_url()
    if server is None:
        pytest.skip("PostgreSQL tests need LEADFLOW_TEST_POSTGRES_URL")
    url = create_postgres_database(server)
    try:
        upgrade(url, revision.down_revision)
        yield url
    finally:
        drop_postgres_database(url)


async def write_as_before(engine: AsyncEngine, stream: list[Envelope]) -> None:
    """The rows scoring wrote for these events before aggregates existed."""
    history = replayed(stream)
    final = history[-1]
    qualified = [s.scored_at for s in history if s.newly_qualified]
    async with engine.begin() as conn:
        for e in stream:
            r = received(e)
            await conn.execute(
                insert(lead_touches).values(
                    lead_key=final.lead_key,
                    event_id=e.id,
                    source=r.source,
                    activity=r.activity,
                    occurred_at=r.received_at,
                    detail=touch_detail(r.lead),
                    fields=lead_fields(r.lead),
                )
            )
        for identifier in identifiers_of(received(stream[0]), KEYS):
            await conn.execute(
                insert(lead_identifiers).values(
                    identifier=identifier.key,
                    kind=identifier.kind,
                    lead_key=final.lead_key,
                    first_event_id=stream[0].id,
                    created_at=T0,
                )
            )
        assert final.first_touch is not None
        assert final.last_touch is not None
        await conn.execute(
            insert(lead_profiles).values(
                lead_key=final.lead_key,
                fields=final.lead.model_dump(mode="json", exclude_none=True),
                first_source="web",
                last_source="web",
                first_seen_at=final.first_touch.occurred_at,
                last_seen_at=final.last_touch.occurred_at,
                score=final.score,
                fit=final.fit,
                engagement=final.engagement,
                tier=final.tier,
                grade=final.grade,
                model_version=final.model_version,
                qualified_at=qualified[0] if qualified else None,
                updated_at=final.scored_at,
                reasons=[],
            )
        )


async def test_profiles_from_before_aggregates_carry_on_from_their_touches(
    previous_url: str,
) -> None:
    stream = events(4, MANY + 1)
    engine = create_engine(previous_url)
    try:
        await write_as_before(engine, stream[:-1])
        await engine.dispose()
        await asyncio.to_thread(upgrade, previous_url)
        async with engine.connect() as conn:
            stored = (await conn.execute(select(lead_profiles.c.aggregate))).scalar_one()
        assert [t["id"] for t in stored["pending"]] == [e.id for e in stream[:-1]]
        before = refolds()

        last = await apply(engine, stream[-1])

        assert last == replayed(stream)[-1]
        assert refolds() == before
        async with engine.connect() as conn:
            stored = (await conn.execute(select(lead_profiles.c.aggregate))).scalar_one()
        assert "pending" not in stored
        assert stored["touches"] == MANY + 1
    finally:
        await engine.dispose()
