"""The database layer on real SQLite and PostgreSQL: migrations, inbox, outbox, timers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from prometheus_client import REGISTRY
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import leadflow_router.tables
import leadflow_scoring.tables
import leadflow_sla.reporting.tables
import leadflow_sla.tables
from leadflow.bus import Headers, Message, Record
from leadflow.bus.memory import InMemoryBus
from leadflow.config import load_config
from leadflow.db.engine import create_engine, session_factory
from leadflow.db.tables import metadata, outbox, processed_events
from leadflow.events import Envelope, LeadActivity, new_event
from leadflow.inbox import first_delivery
from leadflow.metrics import consumer_metrics
from leadflow.outbox import OutboxRelay, enqueue, enqueue_many
from leadflow.processing import BatchHandler, EventProcessor, PoisonEvent, one_by_one
from leadflow.settings import Settings
from leadflow_sla import service as sla_service
from leadflow_sla.tables import sla_timers
from tests.fixtures.stack import CONFIG

# Imported for their tables: the migrations must create every service's tables.
SERVICE_TABLES = (
    leadflow_router.tables,
    leadflow_scoring.tables,
    leadflow_sla.tables,
    leadflow_sla.reporting.tables,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SETTINGS = Settings(consumer_max_attempts=2)


def activity(lead_key: str, event_id: str, kind: str = "contacted") -> Envelope:
    """A CRM activity event."""
    data = LeadActivity(lead_key=lead_key, activity=kind, occurred_at=NOW, source="crm")
    return new_event(f"lead.{kind}", data, source="/test", time=NOW, event_id=event_id)


def record(value: bytes, offset: int) -> Record:
    """A consumed record at `offset`."""
    return Record("leads.activity", 0, offset, b"k", value)


async def test_migrations_create_exactly_the_declared_tables(engine: AsyncEngine) -> None:
    def diff(conn: object) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))  # type: ignore[arg-type]

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_inbox_admits_each_event_once_per_consumer(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        assert await first_delivery(session, "router", "e1", NOW) is True
        assert await first_delivery(session, "router", "e1", NOW) is False
        assert await first_delivery(session, "scoring", "e1", NOW) is True


def processor(
    engine: AsyncEngine,
    bus: InMemoryBus,
    handler: Callable[[AsyncSession, Envelope, datetime], Awaitable[None]],
) -> EventProcessor:
    """A processor that dead-letters to the in-memory bus."""
    return EventProcessor(
        consumer="test",
        engine=engine,
        handlers=dict.fromkeys(("lead.contacted", "lead.rejected"), one_by_one(handler)),
        dead_letters=bus,
        settings=SETTINGS,
        metrics=consumer_metrics("test"),
        clock=lambda: NOW,
    )


async def test_processor_applies_each_event_once_and_dead_letters_the_rest(
    engine: AsyncEngine,
) -> None:
    async def handle(session: AsyncSession, event: Envelope, now: datetime) -> None:
        if event.type == "lead.rejected":
            raise PoisonEvent("rejections need a known lead")
        await enqueue(session, "test", event, now)

    bus = InMemoryBus()
    good = activity("lk_1", "e-good").to_bytes()
    await processor(engine, bus, handle).process(
        [
            record(good, 0),
            record(b"{not json", 1),
            record(good, 2),
            record(activity("lk_2", "e-poison", "rejected").to_bytes(), 3),
        ]
    )

    dead = bus.topics["leads.dlq"]
    assert [dict(r.headers)["leadflow-error-reason"] for r in dead] == [
        b"invalid_event",
        b"rejected_event",
    ]
    assert dict(dead[1].headers)["leadflow-original-offset"] == b"3"
    async with engine.connect() as conn:
        # The redelivered copy was dropped by the inbox: one effect, committed once.
        assert (await conn.execute(select(outbox.c.event_id))).scalars().all() == ["e-good"]


async def test_a_failing_event_is_rolled_back_alone(engine: AsyncEngine) -> None:
    async def handle(session: AsyncSession, event: Envelope, now: datetime) -> None:
        await enqueue(session, "test", event, now)
        if event.subject == "lk_bad":
            raise RuntimeError("boom")

    bus = InMemoryBus()
    await processor(engine, bus, handle).process(
        [
            record(activity(key, f"e-{key}").to_bytes(), i)
            for i, key in enumerate(["lk_a", "lk_bad", "lk_c"])
        ]
    )

    async with engine.connect() as conn:
        kept = (await conn.execute(select(outbox.c.event_id).order_by(outbox.c.id))).scalars()
        assert kept.all() == ["e-lk_a", "e-lk_c"]
    [dead] = bus.topics["leads.dlq"]
    assert dict(dead.headers)["leadflow-error-reason"] == b"handler_error"


class FailingBus(InMemoryBus):
    """A broker that is down."""

    async def publish_many(
        self, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> None:
        raise ConnectionError("broker down")

    async def publish(
        self, topic: str, key: str, value: bytes, headers: Headers | None = None
    ) -> None:
        raise ConnectionError("broker down")


async def test_outbox_relays_in_order_once_and_keeps_rows_while_the_broker_is_down(
    engine: AsyncEngine,
) -> None:
    async with session_factory(engine)() as session, session.begin():
        for i in range(3):
            await enqueue(session, "test", activity(f"lk_{i}", f"e{i}"), NOW)

    with pytest.raises(ConnectionError):
        await OutboxRelay(engine, FailingBus(), SETTINGS, "test").relay_once()
    bus = InMemoryBus()
    relay = OutboxRelay(engine, bus, SETTINGS, "test")
    assert await relay.pending() == 3
    assert await relay.relay_once() == 3
    assert await relay.relay_once() == 0
    assert [Envelope.from_bytes(v).id for v in bus.values("leads.activity")] == ["e0", "e1", "e2"]
    assert await relay.pending() == 0


async def test_due_timers_fire_exactly_once_across_two_monitors(database_url: str) -> None:
    config = load_config(CONFIG)
    engines = [create_engine(database_url) for _ in range(2)]
    async with session_factory(engines[0])() as session, session.begin():
        await session.execute(
            insert(sla_timers),
            [
                {
                    "assignment_id": f"a{i}",
                    "stage": "breached",
                    "lead_key": f"lk_{i}",
                    "policy": "hot-mql",
                    "rep_id": "ana",
                    "team": "enterprise",
                    "assigned_at": NOW - timedelta(minutes=10),
                    "due_at": NOW - timedelta(seconds=i),
                    "status": "open",
                }
                for i in range(60)
            ],
        )

    async def monitor(engine: AsyncEngine) -> int:
        fired = 0
        while True:
            async with session_factory(engine)() as session, session.begin():
                batch = await sla_service.fire_due(session, config, "http://router", NOW)
            if batch == 0:
                return fired
            fired += batch
            await asyncio.sleep(0)

    try:
        counts = await asyncio.gather(*(monitor(e) for e in engines))
        assert sum(counts) == 60
        async with engines[0].connect() as conn:
            ids = (await conn.execute(select(outbox.c.event_id))).scalars().all()
            statuses = await conn.execute(
                select(sla_timers.c.status, func.count()).group_by(sla_timers.c.status)
            )
            assert dict(statuses.all()) == {"fired": 60}
        assert len(ids) == len(set(ids)) == 60
    finally:
        for engine in engines:
            await engine.dispose()


async def test_two_relays_publish_each_row_once_and_in_order(database_url: str) -> None:
    engines = [create_engine(database_url) for _ in range(2)]
    async with session_factory(engines[0])() as session, session.begin():
        for i in range(1200):
            await enqueue(session, "test", activity(f"lk_{i % 7}", f"e{i:04d}"), NOW)
    bus = InMemoryBus()
    relays = [OutboxRelay(engine, bus, SETTINGS, "test") for engine in engines]

    async def drain(relay: OutboxRelay) -> None:
        for _ in range(200):
            if await relay.pending() == 0:
                return
            await relay.relay_once()
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(drain(relay) for relay in relays))
    finally:
        for engine in engines:
            await engine.dispose()
    ids = [Envelope.from_bytes(v).id for v in bus.values("leads.activity")]
    assert ids == [f"e{i:04d}" for i in range(1200)]


async def test_a_batch_handler_gets_the_new_events_of_a_batch_at_once_in_order(
    engine: AsyncEngine,
) -> None:
    calls: list[list[str]] = []

    async def handle(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
        calls.append([e.id for e in events])
        await enqueue_many(session, "test", events, now)

    bus = InMemoryBus()
    proc = EventProcessor(
        consumer="batch",
        engine=engine,
        handlers={"lead.contacted": handle},
        dead_letters=bus,
        settings=SETTINGS,
        metrics=consumer_metrics("test"),
        clock=lambda: NOW,
    )
    first = [activity(f"lk_{i}", f"e-{i}") for i in range(4)]
    await proc.process([record(e.to_bytes(), i) for i, e in enumerate(first)])
    # Redelivered events and a copy within the batch are dropped by the inbox.
    again = [first[2], activity("lk_9", "e-9"), first[0], activity("lk_9", "e-9")]
    await proc.process([record(e.to_bytes(), 4 + i) for i, e in enumerate(again)])

    assert calls == [["e-0", "e-1", "e-2", "e-3"], ["e-9"]]
    async with engine.connect() as conn:
        kept = (await conn.execute(select(outbox.c.event_id).order_by(outbox.c.id))).scalars()
        assert kept.all() == ["e-0", "e-1", "e-2", "e-3", "e-9"]


async def test_a_batch_reaches_its_table_s_handlers_in_runs_and_in_order(
    engine: AsyncEngine,
) -> None:
    calls: list[tuple[str, list[str]]] = []

    def handler(name: str) -> BatchHandler:
        async def handle(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
            calls.append((name, [e.id for e in events]))

        return handle

    outcome, contact = handler("outcome"), handler("contact")
    bus = InMemoryBus()
    proc = EventProcessor(
        consumer="table",
        engine=engine,
        handlers={"lead.contacted": contact, "lead.rejected": outcome, "lead.won": outcome},
        dead_letters=bus,
        settings=SETTINGS,
        metrics=consumer_metrics("test"),
        clock=lambda: NOW,
    )
    batch = [
        activity("lk_1", "e-0"),
        activity("lk_1", "e-1", "rejected"),
        activity("lk_2", "e-2", "lost"),  # not in the table: skipped
        activity("lk_2", "e-3", "won"),
        activity("lk_2", "e-4"),
    ]
    await proc.process([record(e.to_bytes(), i) for i, e in enumerate(batch)])

    assert proc.accepts == {"lead.contacted", "lead.rejected", "lead.won"}
    assert calls == [("contact", ["e-0"]), ("outcome", ["e-1", "e-3"]), ("contact", ["e-4"])]
    assert bus.values("leads.dlq") == []
    async with engine.connect() as conn:
        c = processed_events.c
        seen = await conn.execute(select(c.event_id).where(c.consumer == "table"))
        assert sorted(seen.scalars()) == ["e-0", "e-1", "e-3", "e-4"]


def test_a_processor_needs_a_handler(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="at least one event type"):
        EventProcessor(
            consumer="nothing",
            engine=engine,
            handlers={},
            dead_letters=InMemoryBus(),
            settings=SETTINGS,
            metrics=consumer_metrics("test"),
        )


async def test_statements_sent_to_the_database_are_counted(engine: AsyncEngine) -> None:
    def sent() -> float:
        return REGISTRY.get_sample_value("leadflow_sql_statements_total") or 0.0

    before = sent()
    async with engine.connect() as conn:
        for _ in range(3):
            await conn.execute(select(func.count()).select_from(outbox))
    begin = 1 if engine.dialect.name == "sqlite" else 0  # SQLite's BEGIN IMMEDIATE is one too
    assert sent() - before == 3 + begin
