"""The event processor under infrastructure faults, on real SQLite and PostgreSQL.

A database that refuses connections, drops them mid-handler, or a dead-letter topic that is
unreachable must never turn an event into a dead letter: the processor raises
`InfrastructureUnavailable`, commits nothing of the failed transaction, and the same
records handed over again later are applied exactly once.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow.bus import Headers
from leadflow.bus.memory import InMemoryBus
from leadflow.db.engine import create_engine
from leadflow.db.tables import outbox, processed_events
from leadflow.events import Envelope
from leadflow.metrics import consumer_metrics
from leadflow.outbox import enqueue
from leadflow.processing import EventHandler, EventProcessor, InfrastructureUnavailable, one_by_one
from leadflow.settings import Settings
from tests.fixtures.broker import free_port
from tests.integration.test_database import NOW, activity, record

SETTINGS = Settings(consumer_max_attempts=2)


def processor(engine: AsyncEngine, bus: InMemoryBus, handle: EventHandler) -> EventProcessor:
    return EventProcessor(
        consumer="faults",
        engine=engine,
        handlers={"lead.contacted": one_by_one(handle)},
        dead_letters=bus,
        settings=SETTINGS,
        metrics=consumer_metrics("test"),
        clock=lambda: NOW,
    )


async def keep(session: AsyncSession, event: Envelope, now: datetime) -> None:
    await enqueue(session, "test", event, now)


async def counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        sent = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
        seen = (await conn.execute(select(func.count()).select_from(processed_events))).scalar_one()
    return int(sent), int(seen)


BATCH = [record(activity(f"lk_{i}", f"e-{i}").to_bytes(), i) for i in range(3)]


async def test_a_database_that_refuses_connections_pauses_instead_of_dead_lettering() -> None:
    # Nothing listens on this port: asyncpg raises a plain ConnectionRefusedError.
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/postgres"
    engine = create_engine(url, connect_timeout_s=2)
    bus = InMemoryBus()
    try:
        with pytest.raises(InfrastructureUnavailable):
            await processor(engine, bus, keep).process(BATCH)
    finally:
        await engine.dispose()
    assert "leads.dlq" not in bus.topics


async def test_a_connection_lost_in_the_middle_of_a_handler_is_not_the_events_fault(
    engine: AsyncEngine,
) -> None:
    failures = {"left": 1}

    async def handle(session: AsyncSession, event: Envelope, now: datetime) -> None:
        await enqueue(session, "test", event, now)
        if event.subject == "lk_1" and failures["left"]:
            failures["left"] -= 1
            raise ConnectionResetError("connection reset by peer")

    bus = InMemoryBus()
    with pytest.raises(InfrastructureUnavailable):
        await processor(engine, bus, handle).process(BATCH)
    assert await counts(engine) == (0, 0)  # the whole transaction was rolled back

    await processor(engine, bus, handle).process(BATCH)  # handed over again: all applied
    assert await counts(engine) == (3, 3)
    assert "leads.dlq" not in bus.topics


async def test_a_handler_error_while_the_database_is_gone_is_retried_not_dead_lettered(
    engine: AsyncEngine,
) -> None:
    """Any error is weather while the database does not answer: here the handler's own
    ValueError comes while the engine's server is unreachable."""
    unreachable = create_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/postgres", connect_timeout_s=2
    )

    async def handle(session: AsyncSession, event: Envelope, now: datetime) -> None:
        raise ValueError("a half-read row")

    bus = InMemoryBus()
    proc = processor(engine, bus, handle)
    proc._engine = unreachable  # the probe after the error finds no database
    try:
        with pytest.raises(InfrastructureUnavailable):
            await proc.process(BATCH)
    finally:
        await unreachable.dispose()
    assert "leads.dlq" not in bus.topics


class DeadLetterTopicDown(InMemoryBus):
    """A broker that takes nothing for the dead-letter topic."""

    async def publish(
        self, topic: str, key: str, value: bytes, headers: Headers | None = None
    ) -> None:
        raise ConnectionRefusedError("broker unreachable")


async def test_an_unreachable_dead_letter_topic_keeps_the_batch_for_later(
    engine: AsyncEngine,
) -> None:
    batch = [*BATCH, record(b"{not json", 3)]
    with pytest.raises(InfrastructureUnavailable, match="dead-letter topic"):
        await processor(engine, DeadLetterTopicDown(), keep).process(batch)
    # The good events were committed; handed over again, they are dropped by the inbox
    # and the poison record is dead-lettered once.
    bus = InMemoryBus()
    await processor(engine, bus, keep).process(batch)
    assert await counts(engine) == (3, 3)
    [dead] = bus.topics["leads.dlq"]
    assert dict(dead.headers)["leadflow-error-reason"] == b"invalid_event"


async def test_an_event_that_fails_while_the_database_answers_is_still_poison(
    engine: AsyncEngine,
) -> None:
    async def handle(session: AsyncSession, event: Envelope, now: datetime) -> None:
        await enqueue(session, "test", event, now)
        if event.subject == "lk_1":
            raise KeyError("the event names a team that does not exist")

    bus = InMemoryBus()
    await processor(engine, bus, handle).process(BATCH)
    assert await counts(engine) == (2, 2)
    [dead] = bus.topics["leads.dlq"]
    assert dict(dead.headers)["leadflow-error-reason"] == b"handler_error"
    assert dict(dead.headers)["leadflow-original-offset"] == b"1"
