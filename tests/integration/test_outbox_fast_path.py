"""Outbox rows go out right after their batch commits; the relay only sweeps leftovers.

On real SQLite and PostgreSQL: a consumed batch's events are on the bus when `process`
returns, without waiting for the relay's poll; a failed publish hands every later row to
the sweep until the backlog is out, so one person's events never overtake each other; the
rows a dead process committed but never published are swept once they are older than the
grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow.bus import STRUCTURED, Message, Record
from leadflow.bus.memory import InMemoryBus
from leadflow.db.engine import session_factory
from leadflow.db.tables import outbox
from leadflow.events import Envelope, LeadActivity, new_event
from leadflow.metrics import consumer_metrics
from leadflow.outbox import OutboxRelay, enqueue, enqueue_many
from leadflow.processing import EventProcessor, one_by_one
from leadflow.settings import Settings

# A periodic sweep every 50 ms that leaves rows younger than 5 s alone: whatever reaches
# the bus sooner went through the fast path (or through a sweep that was asked for).
SETTINGS = Settings(outbox_poll_s=0.05, outbox_grace_s=5.0)
TOPIC = "leads.activity"


def contacted(lead_key: str, event_id: str) -> Envelope:
    """A CRM activity event."""
    now = datetime.now(UTC)
    data = LeadActivity(lead_key=lead_key, activity="contacted", occurred_at=now, source="crm")
    return new_event("lead.contacted", data, source="/test", time=now, event_id=event_id)


def records(*events: Envelope, first_offset: int = 0) -> list[Record]:
    """The events as consumed records of one partition."""
    return [
        Record("leads.incoming", 0, first_offset + n, e.subject.encode(), e.to_bytes())
        for n, e in enumerate(events)
    ]


async def forward(session: AsyncSession, event: Envelope, now: datetime) -> None:
    """A handler whose state change is one outbox row: the event, passed on."""
    passed = contacted(event.subject, f"{event.id}-out")
    await enqueue(session, "test", passed, now)


class FlakyBus(InMemoryBus):
    """An in-memory broker that refuses every publish while `down`."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def publish_many(
        self, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> None:
        if self.down:
            raise ConnectionError("broker down")
        await super().publish_many(messages, timeout_s=timeout_s)


def published(bus: InMemoryBus) -> list[str]:
    """The ids of the events on the bus, in order."""
    return [Envelope.from_bytes(value).id for value in bus.values(TOPIC)]


def all_structured(bus: InMemoryBus) -> bool:
    """Whether every record on the bus says it is a CloudEvent in structured mode."""
    return all(STRUCTURED in r.headers for r in bus.topics[TOPIC])


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[None]:
    """The relay's loop, as a service runs it, for the duration of the block."""
    task = asyncio.create_task(relay.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], object], *, zero: bool = False) -> None:
    """Wait (bounded: 3 s in 10 ms rounds) until `condition()` (or what it awaits) is true,
    or with `zero`, is 0."""
    for _ in range(300):
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if (value == 0) if zero else value:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


def processor(engine: AsyncEngine, relay: OutboxRelay, bus: InMemoryBus) -> EventProcessor:
    return EventProcessor(
        consumer="fast-path",
        engine=engine,
        handlers={"lead.contacted": one_by_one(forward)},
        dead_letters=bus,
        settings=SETTINGS,
        metrics=consumer_metrics("test"),
        outbox=relay,
    )


async def test_a_batch_is_on_the_bus_when_process_returns_and_is_marked_sent(
    engine: AsyncEngine,
) -> None:
    bus = InMemoryBus()
    relay = OutboxRelay(engine, bus, SETTINGS, "test")
    async with running(relay):
        await until(lambda: not relay.backlog)  # the first sweep found nothing left
        await processor(engine, relay, bus).process(
            records(contacted("lk_1", "a"), contacted("lk_2", "b"), contacted("lk_1", "c"))
        )
        assert published(bus) == ["a-out", "b-out", "c-out"]
        assert all_structured(bus)
        await until(relay.pending, zero=True)
        await asyncio.sleep(0.2)  # several periodic sweeps: nothing goes out twice
    assert published(bus) == ["a-out", "b-out", "c-out"]


async def test_after_a_failed_publish_later_rows_wait_for_the_sweep_and_keep_their_order(
    engine: AsyncEngine,
) -> None:
    bus = FlakyBus()
    relay = OutboxRelay(engine, bus, SETTINGS, "test")
    consumer = processor(engine, relay, bus)
    async with running(relay):
        await until(lambda: not relay.backlog)
        bus.down = True
        # Committed while the broker is away: kept, never an error for the consumer.
        await consumer.process(records(contacted("lk_1", "first")))
        assert published(bus) == []
        assert await relay.pending() == 1
        assert relay.backlog
        bus.down = False
        # The next event of the same person must not overtake the one still pending.
        await consumer.process(records(contacted("lk_1", "second"), first_offset=1))
        await until(relay.pending, zero=True)
        assert published(bus) == ["first-out", "second-out"]
        assert all_structured(bus)  # the sweep's records too
        await until(lambda: not relay.backlog)  # the backlog is out: the fast path is back
        await consumer.process(records(contacted("lk_1", "third"), first_offset=2))
        assert published(bus) == ["first-out", "second-out", "third-out"]


async def test_a_dead_process_s_rows_are_swept_once_older_than_the_grace(
    engine: AsyncEngine,
) -> None:
    old = datetime.now(UTC) - timedelta(seconds=30)
    async with session_factory(engine)() as session, session.begin():
        # Committed by a process that died before publishing them...
        await enqueue_many(session, "test", [contacted("lk_9", "left-1")], old)
        await enqueue_many(session, "test", [contacted("lk_9", "left-2")], old)
        # ...and a row another instance is publishing right now.
        await enqueue(session, "test", contacted("lk_8", "in-flight"), datetime.now(UTC))
    bus = InMemoryBus()
    relay = OutboxRelay(engine, bus, SETTINGS, "test")
    assert await relay.relay_once(grace=timedelta(seconds=5)) == 2
    assert published(bus) == ["left-1", "left-2"]
    assert await relay.pending() == 1
    async with session_factory(engine)() as session, session.begin():
        await session.execute(update(outbox).values(created_at=old))
    assert await relay.relay_once(grace=timedelta(seconds=5)) == 1
    assert published(bus) == ["left-1", "left-2", "in-flight"]


def test_the_sweep_must_come_before_a_dead_instance_s_partitions_move() -> None:
    with pytest.raises(ValidationError, match="LEADFLOW_OUTBOX_GRACE_S"):
        Settings(outbox_poll_s=1, outbox_grace_s=9.5, consumer_session_timeout_ms=10_000)
