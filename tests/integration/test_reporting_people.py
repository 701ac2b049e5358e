"""One person, one lifecycle, on SQLite and PostgreSQL: whatever the place of scoring's
`lead.merged` among a person's events, reports keep one lifecycle under the survivor's key
(earliest arrival and its source, every contact and deal once), count the person once,
and answer at any of their keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow.bus import Record
from leadflow.bus.memory import InMemoryBus
from leadflow.config import load_config
from leadflow.db.engine import session_factory
from leadflow.db.tables import lead_aliases, processed_events
from leadflow.events import (
    Envelope,
    Lead,
    LeadActivity,
    LeadAssigned,
    LeadMerged,
    LeadReceived,
    LeadScored,
    new_event,
)
from leadflow.metrics import consumer_metrics
from leadflow.processing import EventProcessor
from leadflow.settings import Settings
from leadflow_sla.reporting import api, service
from leadflow_sla.reporting.consumer import FOLDED
from leadflow_sla.reporting.lifecycle import Lifecycle
from leadflow_sla.reporting.query import ReportQuery
from leadflow_sla.reporting.tables import lead_lifecycles
from tests.fixtures.auth import AUTH, authorized
from tests.fixtures.stack import CONFIG

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
REPORTING = load_config(CONFIG).reporting
EMAIL, PHONE = "lk_email", "lk_phone"


def received(key: str, minutes: float, source: str, **lead: Any) -> Envelope:
    at = T0 + minutes * MIN
    data = LeadReceived(
        lead_key=key,
        source=source,
        source_kind="standard",
        delivery_id=f"d-{key}-{minutes}",
        received_at=at,
        lead=Lead.model_validate({"company": {"size": 1500}, **lead}),
    )
    return new_event("lead.received", data, source="/t", time=at, event_id=f"r-{key}-{minutes}")


def scored(key: str, minutes: float, **fields: Any) -> Envelope:
    at = T0 + minutes * MIN
    data = LeadScored(
        lead_key=key,
        model_version="v",
        score=80,
        fit=40,
        engagement=40,
        tier="mql",
        qualified=True,
        newly_qualified=True,
        reasons=[],
        scored_at=at,
        received_at=at,
        source="web",
        lead=Lead(),
        **fields,
    )
    return new_event("lead.scored", data, source="/t", time=at, event_id=f"s-{key}-{minutes}")


def assigned(key: str, minutes: float, rep: str) -> Envelope:
    at = T0 + minutes * MIN
    data = LeadAssigned(
        lead_key=key,
        assignment_id=f"a-{key}",
        rep_id=rep,
        rep_name=rep,
        team="enterprise",
        rule="r",
        tier="mql",
        reason="",
        assigned_at=at,
        received_at=T0,
    )
    return new_event("lead.assigned", data, source="/t", time=at, event_id=f"a-{key}")


def crm(kind: str, minutes: float, *keys: str, **fields: Any) -> Envelope:
    at = T0 + minutes * MIN
    data = LeadActivity(
        lead_key=keys[0],
        identifiers=list(keys),
        activity=kind,
        occurred_at=at,
        source="crm",
        **fields,
    )
    event_id = f"{kind}-{keys[0]}-{minutes}"
    return new_event(f"lead.{kind}", data, source="/t", time=at, event_id=event_id)


def merged(survivor: str, alias: str, *, absorbed: bool) -> Envelope:
    data = LeadMerged(
        survivor=survivor,
        absorbed=[alias] if absorbed else [],
        identifiers=[survivor, alias],
        merged_at=T0 + 30 * MIN,
    )
    return new_event("lead.merged", data, source="/t", time=T0, event_id=f"m-{survivor}-{alias}")


def processor(engine: AsyncEngine) -> EventProcessor:
    """The reporting consumer as the SLA monitor runs it (inbox, batch handler, one commit)."""

    async def fold(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
        await service.apply_events(session, events, REPORTING, now)

    return EventProcessor(
        consumer=service.CONSUMER,
        engine=engine,
        handlers=dict.fromkeys(FOLDED, fold),
        dead_letters=InMemoryBus(),
        settings=Settings(config=CONFIG),
        metrics=consumer_metrics("reporting_people_test"),
        clock=lambda: T0,
    )


def records(events: Sequence[Envelope], first: int = 0) -> list[Record]:
    return [
        Record("leads.activity", 0, first + i, e.subject.encode(), e.to_bytes())
        for i, e in enumerate(events)
    ]


async def consume(engine: AsyncEngine, events: Sequence[Envelope], size: int = 1) -> None:
    consumer = processor(engine)
    for start in range(0, len(events), size):
        await consumer.process(records(events[start : start + size], start))


async def lifecycles(engine: AsyncEngine) -> dict[str, Lifecycle]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(lead_lifecycles).order_by(lead_lifecycles.c.lead_key))
        return {row.lead_key: Lifecycle.from_row(dict(row._mapping)) for row in rows}


async def aliases(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(lead_aliases.c.alias, lead_aliases.c.survivor).where(
                lead_aliases.c.consumer == service.ALIASES
            )
        )
        return {str(row.alias): str(row.survivor) for row in rows}


async def clear(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        for table in (lead_lifecycles, lead_aliases, processed_events):
            await session.execute(delete(table))


# A person who filled the form by email (an MQL, assigned to Ana), then called from their
# phone (a touch of its own under the phone's key, before scoring linked them), then was
# contacted, accepted and won as reported by phone.
STORY = [
    received(EMAIL, 0, "web", email="dana@bigco.example", utm={"source": "google"}),
    scored(EMAIL, 0.5),
    assigned(EMAIL, 1, "ana"),
    received(PHONE, 20, "ivr", phone="+14155550100"),
    crm("contacted", 25, PHONE),
    crm("accepted", 40, PHONE),
    crm("won", 60 * 24, PHONE, amount=1000.0),
]


@pytest.mark.parametrize("absorbed", [False, True], ids=["identifier", "profile"])
async def test_the_merge_anywhere_in_the_story_leaves_one_lifecycle(
    engine: AsyncEngine, absorbed: bool
) -> None:
    merge = merged(EMAIL, PHONE, absorbed=absorbed)
    ends = []
    for position in range(len(STORY) + 1):
        await consume(engine, [*STORY[:position], merge, *STORY[position:]])
        ends.append((await lifecycles(engine), await aliases(engine)))
        await clear(engine)
    # Batches of three, the merge in the middle of one.
    await consume(engine, [*STORY[:4], merge, *STORY[4:]], size=3)
    ends.append((await lifecycles(engine), await aliases(engine)))

    assert all(end == ends[0] for end in ends), ends
    rows, known = ends[0]
    assert known == {PHONE: EMAIL}
    [person] = rows.values()
    assert person.lead_key == EMAIL
    assert (person.touches, person.first_touch_at, person.first_source) == (2, T0, "google")
    assert (person.last_source, person.rep_id, person.assigned_at) == ("ivr", "ana", T0 + MIN)
    assert (person.contacted_at, person.contacts, person.accepted_at) == (
        T0 + 25 * MIN,
        1,
        T0 + 40 * MIN,
    )
    assert (person.won_deals, person.revenue) == (1, 1000.0)


async def test_two_profiles_each_assigned_report_one_person_owned_by_the_earlier_rep(
    engine: AsyncEngine,
) -> None:
    events = [
        received(PHONE, 0, "ivr", phone="+14155550100"),
        scored(PHONE, 0.5),
        assigned(PHONE, 1, "ben"),
        received(EMAIL, 5, "web", email="dana@bigco.example"),
        scored(EMAIL, 5.5),
        assigned(EMAIL, 6, "ana"),
        # Scoring's own account of the merge: the survivor's score names what it merged.
        scored(PHONE, 10, merged_from=[EMAIL], identifiers=[PHONE, EMAIL]),
        crm("contacted", 12, EMAIL),
    ]
    await consume(engine, events, size=4)

    rows = await lifecycles(engine)
    assert list(rows) == [PHONE]
    person = rows[PHONE]
    assert (person.touches, person.first_source, person.rep_id, person.owner_first) == (
        2,
        "ivr",
        "ben",
        True,
    )
    assert (person.contacts, person.reassignments) == (1, 0)
    assert await aliases(engine) == {EMAIL: PHONE}
    async with session_factory(engine)() as session:
        funnel = await service.funnel_report(session, ReportQuery(), "rep")
    stages = {s.stage: s.leads for s in funnel.stages}
    assert (stages["received"], stages["assigned"], stages["contacted"]) == (1, 1, 1)


async def test_a_merge_the_consumer_already_knows_changes_nothing(engine: AsyncEngine) -> None:
    merge = merged(EMAIL, PHONE, absorbed=False)
    again = new_event("lead.merged", merge.data, source="/t", time=T0, event_id="m-again")
    await consume(engine, [*STORY[:3], merge])
    before = await lifecycles(engine)
    await consume(engine, [again])

    assert await lifecycles(engine) == before
    assert await aliases(engine) == {PHONE: EMAIL}


def statements() -> float:
    return REGISTRY.get_sample_value("leadflow_sql_statements_total") or 0.0


async def test_statements_per_batch_with_merges_do_not_grow_with_the_batch(
    engine: AsyncEngine,
) -> None:
    counts: dict[int, float] = {}
    for n in (1, 100):
        people = [(f"lk_e{n}_{i}", f"lk_p{n}_{i}") for i in range(n)]
        await consume(engine, [received(e, i, "web") for i, (e, _) in enumerate(people)], size=n)
        await consume(engine, [received(p, i, "ivr") for i, (_, p) in enumerate(people)], size=n)
        mixed = [
            event
            for e, p in people
            for event in (merged(e, p, absorbed=True), crm("contacted", 5, p), scored(p, 6))
        ]
        before = statements()
        await processor(engine).process(records(mixed, 10_000))
        counts[n] = statements() - before

    assert counts[100] == counts[1], counts
    rows = await lifecycles(engine)
    assert len(rows) == 101
    assert {(lc.touches, lc.contacts, lc.tier) for lc in rows.values()} == {(2, 1, "mql")}


@pytest.fixture
async def reports(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
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


async def test_the_lifecycle_answers_at_any_of_the_persons_keys(
    engine: AsyncEngine, reports: httpx.AsyncClient
) -> None:
    await consume(engine, [*STORY, merged(EMAIL, PHONE, absorbed=True)], size=4)

    by_email = (await reports.get(f"/v1/reports/leads/{EMAIL}")).json()
    by_phone = (await reports.get(f"/v1/reports/leads/{PHONE}")).json()
    assert by_phone == by_email
    assert (by_phone["lead_key"], by_phone["touches"], by_phone["stage"]) == (EMAIL, 2, "won")
    missing = await reports.get("/v1/reports/leads/lk_nobody")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "No event of lead lk_nobody has been seen."
