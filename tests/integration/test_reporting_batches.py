"""Reporting batches on SQLite and PostgreSQL: a batch folds as its events one at a time do, in
the same few statements for one event or two hundred, and counts each event once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow.bus import Record
from leadflow.bus.memory import InMemoryBus
from leadflow.config import load_config
from leadflow.db.engine import create_engine, session_factory
from leadflow.db.tables import processed_events
from leadflow.events import (
    Envelope,
    Lead,
    LeadActivity,
    LeadAssigned,
    LeadReceived,
    LeadScored,
    LeadUnassigned,
    new_event,
)
from leadflow.metrics import consumer_metrics
from leadflow.processing import EventProcessor
from leadflow.settings import Settings
from leadflow.topics import DLQ
from leadflow_sla.reporting import service
from leadflow_sla.reporting.consumer import FOLDED
from leadflow_sla.reporting.lifecycle import Lifecycle
from leadflow_sla.reporting.tables import lead_lifecycles
from tests.fixtures.databases import migrated_database_url
from tests.fixtures.stack import CONFIG

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
REPORTING = load_config(CONFIG).reporting
SETTINGS = Settings(config=CONFIG)


def received(
    key: str, at: datetime, source: str, size: int, event_id: str | None = None
) -> Envelope:
    data = LeadReceived(
        lead_key=key,
        source="web",
        source_kind="standard",
        delivery_id=f"d-{key}-{at.isoformat()}",
        received_at=at,
        lead=Lead.model_validate({"email": f"{key}@buyer.example", "utm": {"source": source},
                                  "company": {"size": size}}),
    )  # fmt: skip
    return new_event("lead.received", data, source="/test", time=at, event_id=event_id)


def scored(key: str, at: datetime, tier: str, touch_at: datetime) -> Envelope:
    qualified = tier == "mql"
    data = LeadScored(
        lead_key=key,
        model_version="v",
        score=80 if qualified else 20,
        fit=40,
        engagement=40,
        tier=tier,
        qualified=qualified,
        newly_qualified=qualified,
        reasons=[],
        scored_at=at,
        received_at=touch_at,
        source="web",
        lead=Lead(),
    )
    return new_event("lead.scored", data, source="/test", time=at)


def assigned(key: str, at: datetime, rep: str, *, again: bool = False) -> Envelope:
    data = LeadAssigned(
        lead_key=key,
        assignment_id=f"a-{key}-{rep}",
        rep_id=rep,
        rep_name=rep,
        team="enterprise",
        rule="r",
        tier="mql",
        reason="",
        assigned_at=at,
        received_at=T0,
    )
    return new_event("lead.reassigned" if again else "lead.assigned", data, source="/t", time=at)


def crm(key: str, kind: str, at: datetime, event_id: str | None = None, **fields: Any) -> Envelope:
    data = LeadActivity(lead_key=key, activity=kind, occurred_at=at, source="crm", **fields)
    return new_event(f"lead.{kind}", data, source="/test", time=at, event_id=event_id)


# Four leads interleaved; outcomes before their lead arrived; several events of one lead.
STREAM = [
    crm("lk_a", "contacted", T0 + 2 * MIN),  # before lk_a arrived
    received("lk_a", T0, "google", 1500),
    received("lk_b", T0 + MIN, "linkedin", 200),
    scored("lk_a", T0 + MIN / 2, "mql", T0),
    assigned("lk_a", T0 + MIN, "ana"),
    crm("lk_c", "won", T0 + 9 * DAY, amount=500.0),  # lk_c never arrives
    received("lk_a", T0 + 2 * DAY, "email", 1500),  # lk_a comes back: its last touch
    scored("lk_b", T0 + 2 * MIN, "nurture", T0 + MIN),
    crm("lk_a", "contacted", T0 + 5 * MIN),
    assigned("lk_a", T0 + 20 * MIN, "chloe", again=True),
    scored("lk_b", T0 + 3 * HOUR, "mql", T0 + 3 * HOUR),  # lk_b qualifies later
    crm("lk_a", "rejected", T0 + 2 * HOUR, reason="timing"),
    crm("lk_a", "rejected", T0 + HOUR, reason="no  budget"),  # older: the later verdict stands
    crm("lk_c", "won", T0 + 10 * DAY, amount=700.0, profit=300.0),
    received("lk_d", T0 + 3 * MIN, "ebook", 20),
    crm("lk_b", "lost", T0 + 4 * DAY, reason="price"),
    crm("lk_c", "won", T0 + 8 * DAY, amount=100.0),
]


def processor(engine: AsyncEngine, dead_letters: InMemoryBus | None = None) -> EventProcessor:
    """The reporting consumer as the SLA monitor runs it (inbox, batch handler, one commit)."""

    async def fold(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
        await service.apply_events(session, events, REPORTING, now)

    return EventProcessor(
        consumer=service.CONSUMER,
        engine=engine,
        handlers=dict.fromkeys(FOLDED, fold),
        dead_letters=dead_letters or InMemoryBus(),
        settings=SETTINGS,
        metrics=consumer_metrics("reporting_batches_test"),
        clock=lambda: T0,
    )


def records(events: Sequence[Envelope], first_offset: int = 0) -> list[Record]:
    return [
        Record("leads.activity", 0, first_offset + i, e.subject.encode(), e.to_bytes())
        for i, e in enumerate(events)
    ]


async def consume(engine: AsyncEngine, events: Sequence[Envelope], size: int) -> None:
    """Feed `events` to the reporting consumer in batches of `size`."""
    consumer = processor(engine)
    for start in range(0, len(events), size):
        await consumer.process(records(events[start : start + size], start))


async def lifecycles(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(lead_lifecycles).order_by(lead_lifecycles.c.lead_key))
        return {row.lead_key: dict(row._mapping) for row in rows}


async def clear(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        await session.execute(delete(lead_lifecycles))
        await session.execute(delete(processed_events))


@pytest.mark.parametrize("size", [len(STREAM), 5, 2])
async def test_a_batch_folds_as_its_events_one_at_a_time(engine: AsyncEngine, size: int) -> None:
    await consume(engine, STREAM, size)
    batched = await lifecycles(engine)
    await clear(engine)
    await consume(engine, STREAM, 1)

    assert batched == await lifecycles(engine)
    a, b, c, d = (Lifecycle.from_row(batched[k]) for k in ("lk_a", "lk_b", "lk_c", "lk_d"))
    assert (a.touches, a.first_touch_at, a.first_source, a.last_source, a.first_segment) == (
        2,
        T0,
        "google",
        "email",
        "enterprise",
    )
    assert (a.tier, a.mql_at, a.ready_at, a.assigned_at, a.rep_id, a.reassignments) == (
        "mql",
        T0 + MIN / 2,
        T0,
        T0 + MIN,
        "chloe",
        1,
    )
    assert (a.contacted_at, a.contacts) == (T0 + 2 * MIN, 2)
    assert (a.rejected_at, a.rejection_reason) == (T0 + 2 * HOUR, "timing")
    assert (b.first_segment, b.tier, b.mql_at, b.ready_at) == (
        "smb",
        "mql",
        T0 + 3 * HOUR,
        T0 + 3 * HOUR,
    )
    assert (b.lost_at, b.lost_reason) == (T0 + 4 * DAY, "price")
    assert (c.first_touch_at, c.won_at, c.won_deals, c.revenue) == (None, T0 + 8 * DAY, 3, 1300.0)
    assert (c.reported_profit, c.revenue_without_profit) == (300.0, 600.0)
    assert (d.touches, d.first_segment, d.tier, d.assigned_at) == (1, "smb", None, None)


async def test_a_later_batch_continues_the_stored_lifecycles(engine: AsyncEngine) -> None:
    await consume(engine, STREAM, len(STREAM))
    later = [
        crm("lk_a", "contacted", T0 + MIN),  # earlier than any contact so far
        received("lk_a", T0 - DAY, "partner", 1500),  # earlier than the first touch
        crm("lk_c", "won", T0 + 11 * DAY, amount=1.0),
        crm("lk_e", "accepted", T0 + HOUR),  # a lead the database has not seen
    ]
    await consume(engine, later, len(later))

    rows = await lifecycles(engine)
    a, c, e = (Lifecycle.from_row(rows[k]) for k in ("lk_a", "lk_c", "lk_e"))
    assert (a.contacted_at, a.contacts, a.touches) == (T0 + MIN, 3, 3)
    assert (a.first_touch_at, a.first_source, a.last_source) == (T0 - DAY, "partner", "email")
    assert (c.won_deals, c.revenue) == (4, 1301.0)
    assert (e.accepted_at, e.touches, e.first_touch_at) == (T0 + HOUR, 0, None)
    assert sorted(rows) == ["lk_a", "lk_b", "lk_c", "lk_d", "lk_e"]


async def test_duplicates_in_a_batch_and_redelivered_batches_count_once(
    engine: AsyncEngine,
) -> None:
    contact = crm("lk_a", "contacted", T0 + 2 * MIN, event_id="contact-1")
    won = crm("lk_a", "won", T0 + DAY, event_id="won-1", amount=1000.0)
    batch = [received("lk_a", T0, "google", 1500, "touch-1"), contact, contact, won, contact]
    consumer = processor(engine)
    await consumer.process(records(batch))
    once = await lifecycles(engine)
    # The whole batch again (a redelivery after a crash), then again with one new event.
    await consumer.process(records(batch))
    assert await lifecycles(engine) == once
    second = crm("lk_a", "contacted", T0 + 3 * MIN, event_id="contact-2")
    await consumer.process(records([won, second, contact]))

    a = Lifecycle.from_row((await lifecycles(engine))["lk_a"])
    assert (a.touches, a.contacts, a.contacted_at) == (1, 2, T0 + 2 * MIN)
    assert (a.won_deals, a.revenue) == (1, 1000.0)
    assert Lifecycle.from_row(once["lk_a"]).contacts == 1


def statements() -> float:
    """SQL statements this process has sent so far (the project's own counter)."""
    return REGISTRY.get_sample_value("leadflow_sql_statements_total") or 0.0


async def counted(engine: AsyncEngine, events: Sequence[Envelope], offset: int) -> float:
    """How many statements the reporting consumer sends for one batch of `events`."""
    before = statements()
    await processor(engine).process(records(events, offset))
    return statements() - before


async def test_statements_per_batch_do_not_grow_with_the_batch(engine: AsyncEngine) -> None:
    await counted(engine, [received("lk_warm", T0, "google", 1500)], 0)
    one = await counted(engine, [received("lk_one", T0, "google", 1500)], 1)
    fresh = await counted(
        engine, [received(f"lk_{i}", T0 + i * MIN, "google", 100 * i) for i in range(200)], 2
    )
    # Several events of each of a hundred stored leads, interleaved, with new ones among them.
    mixed = [
        event
        for i in range(100)
        for event in (
            scored(f"lk_{i}", T0 + i * MIN, "mql", T0),
            assigned(f"lk_{i}", T0 + i * MIN, "ana"),
            crm(f"lk_{i}", "contacted", T0 + (i + 5) * MIN),
            crm(f"lk_new_{i}", "won", T0 + DAY, amount=10.0),
        )
    ]
    stored = await counted(engine, mixed, 300)

    # SQLite: BEGIN, the inbox, the erasure records of the batch's keys, create the missing
    # rows, lock and read them all, read their aliases, write back.
    assert one <= (7 if engine.dialect.name == "sqlite" else 6)
    assert fresh == one
    assert stored == one
    rows = await lifecycles(engine)
    assert len(rows) == 2 + 200 + 100
    lc = Lifecycle.from_row(rows["lk_7"])
    assert (lc.touches, lc.mql_at, lc.rep_id, lc.contacted_at) == (
        1,
        T0 + 7 * MIN,
        "ana",
        T0 + 12 * MIN,
    )
    assert Lifecycle.from_row(rows["lk_new_99"]).won_deals == 1


async def test_a_batch_of_events_reporting_does_not_fold_writes_no_lifecycle(
    engine: AsyncEngine,
) -> None:
    queued = LeadUnassigned(
        lead_key="lk_q", team="smb", rule="r", tier="mql", reason="", queued_at=T0, received_at=T0
    )
    unread = [new_event("lead.unassigned", queued, source="/t", time=T0) for _ in range(3)]
    assert await counted(engine, unread, 0) <= 1  # SQLite may begin; nothing else
    assert await lifecycles(engine) == {}


async def test_a_poison_record_in_a_batch_is_dead_lettered_and_the_rest_folded(
    engine: AsyncEngine,
) -> None:
    await consume(engine, STREAM, 1)
    alone = await lifecycles(engine)
    await clear(engine)
    bus = InMemoryBus()
    batch = records(STREAM)
    batch.insert(3, Record("leads.activity", 0, 99, b"lk_a", b"{not an event"))

    await processor(engine, bus).process(batch)

    assert await lifecycles(engine) == alone
    letters = bus.topics[SETTINGS.topic(DLQ)]
    assert [dict(r.headers)["leadflow-error-reason"] for r in letters] == [b"invalid_event"]


async def test_two_consumers_folding_the_same_leads_in_batches_lose_no_update(
    database_url: str,
) -> None:
    """Each batch touches every lead, the two consumers in opposite orders: no update is
    lost and the two never wait for each other in a circle (keys are locked sorted)."""
    keys = [f"lk_race_{i}" for i in range(5)]
    won = {key: [crm(key, "won", T0 + i * MIN, amount=100.0) for i in range(40)] for key in keys}
    forward = [won[key][i] for i in range(0, 40, 2) for key in keys]
    backward = [won[key][i] for i in range(1, 40, 2) for key in reversed(keys)]
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        # Twenty batches each, every one of them touching the five leads.
        await asyncio.gather(consume(engines[0], forward, 5), consume(engines[1], backward, 5))
        rows = await lifecycles(engines[0])
    finally:
        for engine in engines:
            await engine.dispose()
    for key in keys:
        lc = Lifecycle.from_row(rows[key])
        assert (lc.won_deals, lc.revenue, lc.won_at) == (40, 4000.0, T0)


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A migrated PostgreSQL database (the one that refuses a lead key past its column)."""
    yield from migrated_database_url("postgres", tmp_path)


@pytest.mark.postgres
async def test_an_event_the_database_refuses_fails_alone(postgres_url: str) -> None:
    """The batch rolls back whole; its events are then applied one by one, and only the
    event that fails every time is dead-lettered."""
    engine = create_engine(postgres_url)
    bus = InMemoryBus()
    try:
        consumer = processor(engine, bus)
        too_long = "lk_" + "x" * 80
        batch = [
            received("lk_a", T0, "google", 1500),
            crm(too_long, "contacted", T0 + MIN),
            crm("lk_a", "contacted", T0 + 2 * MIN),
        ]
        await consumer.process(records(batch))
        rows = await lifecycles(engine)
        async with engine.connect() as conn:
            applied = await conn.scalar(select(func.count()).select_from(processed_events))
    finally:
        await engine.dispose()

    assert sorted(rows) == ["lk_a"]
    a = Lifecycle.from_row(rows["lk_a"])
    assert (a.touches, a.contacts, a.contacted_at) == (1, 1, T0 + 2 * MIN)
    assert applied == 2
    letters = bus.topics[SETTINGS.topic(DLQ)]
    assert len(letters) == 1
    assert dict(letters[0].headers)["leadflow-error-reason"] == b"handler_error"
