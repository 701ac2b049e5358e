"""The trace context survives the tables that keep work for later, on SQLite and PostgreSQL:
an outbox row publishes with the `traceparent` of the event span that wrote it (fast path
and sweep alike), and a notification's send is a span in the trace it was queued in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow import tracing
from leadflow.bus import STRUCTURED, Record
from leadflow.bus.memory import InMemoryBus
from leadflow.db.engine import session_factory
from leadflow.db.tables import notifications, outbox
from leadflow.delivery import Notification
from leadflow.events import Envelope, LeadActivity, new_event
from leadflow.metrics import consumer_metrics
from leadflow.notifications import NotificationDispatcher, queue
from leadflow.outbox import OutboxRelay, enqueue
from leadflow.processing import EventProcessor, one_by_one
from leadflow.settings import Settings

SETTINGS = Settings(otel=True, outbox_poll_s=0.05)
LEAD_A = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
LEAD_B = "00-11111111111111111111111111111111-2222222222222222-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure("test", SETTINGS, exporter)
    yield exporter
    tracing.disable()


def contacted(lead_key: str, event_id: str) -> Envelope:
    now = datetime.now(UTC)
    data = LeadActivity(lead_key=lead_key, activity="contacted", occurred_at=now, source="crm")
    return new_event("lead.contacted", data, source="/test", time=now, event_id=event_id)


async def forward(session: AsyncSession, event: Envelope, now: datetime) -> None:
    await enqueue(session, "test", contacted(event.subject, f"{event.id}-out"), now)


def trace_of(traceparent: str | None) -> str:
    assert traceparent is not None
    return traceparent.split("-")[1]


def traceparent_of(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


async def stored_traceparents(engine: AsyncEngine) -> dict[str, str | None]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.event_id, outbox.c.traceparent))
        return {str(event_id): traceparent for event_id, traceparent in rows.all()}


async def test_a_batch_publishes_each_leads_events_in_that_leads_trace(
    engine: AsyncEngine, spans: InMemorySpanExporter
) -> None:
    bus = InMemoryBus()
    relay = OutboxRelay(engine, bus, SETTINGS, "test")
    events = [contacted("lk_a", "a"), contacted("lk_b", "b")]
    heads = [LEAD_A, LEAD_B]
    batch = [
        Record(
            "leads.activity", 0, n, e.subject.encode(), e.to_bytes(), [("traceparent", h.encode())]
        )
        for n, (e, h) in enumerate(zip(events, heads, strict=True))
    ]
    processor = EventProcessor(
        consumer="router",
        engine=engine,
        handlers={"lead.contacted": one_by_one(forward)},
        dead_letters=bus,
        settings=SETTINGS,
        metrics=consumer_metrics("test"),
        outbox=relay,
    )
    task = asyncio.create_task(relay.run())
    try:
        for _ in range(300):  # until its first sweep found nothing left from before
            if not relay.backlog:
                break
            await asyncio.sleep(0.01)
        await processor.process(batch)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    handled = {
        s.attributes["leadflow.lead_key"]: s
        for s in spans.get_finished_spans()
        if s.name == "router lead.contacted" and s.attributes
    }
    out = {r.key: tracing.traceparent_in(r.headers) for r in bus.topics["leads.activity"]}
    # Each forwarded event continues its own lead's span, not the batch's or the other's.
    assert out == {
        b"lk_a": traceparent_of(handled["lk_a"]),
        b"lk_b": traceparent_of(handled["lk_b"]),
    }
    assert trace_of(out[b"lk_a"]) == trace_of(LEAD_A)
    assert trace_of(out[b"lk_b"]) == trace_of(LEAD_B)
    assert await stored_traceparents(engine) == {"a-out": out[b"lk_a"], "b-out": out[b"lk_b"]}


async def test_the_sweep_publishes_the_stored_trace_context(
    engine: AsyncEngine, spans: InMemorySpanExporter
) -> None:
    now = datetime.now(UTC)
    async with session_factory(engine)() as session, session.begin():
        with tracing.continued("sla-monitor sla.breached", LEAD_A):
            written = tracing.current_traceparent()
            await enqueue(session, "test", contacted("lk_a", "swept"), now)
        await enqueue(session, "test", contacted("lk_c", "untraced"), now)
    bus = InMemoryBus()
    assert await OutboxRelay(engine, bus, SETTINGS, "test").relay_once() == 2
    traced, untraced = bus.topics["leads.activity"]
    assert tracing.traceparent_in(traced.headers) == written
    assert trace_of(written) == trace_of(LEAD_A)
    # Untraced, it is still a CloudEvent in structured mode, and says nothing more.
    assert untraced.headers == [STRUCTURED]


class Collecting:
    """A sender that keeps what it is given, and the trace context it sent in."""

    def __init__(self) -> None:
        self.sent: list[tuple[Notification, str | None]] = []

    async def send(self, notification: Notification) -> None:
        self.sent.append((notification, tracing.current_traceparent()))


async def test_a_notification_is_sent_in_a_span_of_the_trace_it_was_queued_in(
    engine: AsyncEngine, spans: InMemorySpanExporter
) -> None:
    now = datetime.now(UTC)
    note = Notification(
        "webhook",
        "https://rep.example/hook",
        "SLA breached",
        "Lead lk_a is overdue.",
        "sla:asg_1:breached:webhook",
        {"lead_key": "lk_a", "stage": "breached"},
    )
    async with session_factory(engine)() as session, session.begin():
        with tracing.continued("sla-monitor sla.breached", LEAD_A):
            alert = tracing.current_traceparent()
            assert await queue(session, "sla-monitor", note, now)
    async with engine.connect() as conn:
        stored = (await conn.execute(select(notifications.c.traceparent))).scalar_one()
    assert stored == alert

    sender = Collecting()
    dispatcher = NotificationDispatcher(engine, SETTINGS, "sla-monitor", {"webhook": sender})
    assert await dispatcher.dispatch_once(now) == 1
    [(sent, during)] = sender.sent
    assert sent.dedupe_key == note.dedupe_key
    [send] = [s for s in spans.get_finished_spans() if s.name == "sla-monitor notify webhook"]
    assert during == traceparent_of(send)
    assert send.parent is not None
    assert alert is not None
    assert f"{send.parent.span_id:016x}" == alert.split("-")[2]
    assert trace_of(during) == trace_of(LEAD_A)
