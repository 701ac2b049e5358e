"""One trace per lead: trace context in Kafka headers, consumer spans per event, log ids."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from leadflow import tracing
from leadflow.bus import STRUCTURED, Record, structured
from leadflow.bus.memory import InMemoryBus
from leadflow.delivery import Notification, WebhookSender
from leadflow.events import Envelope, LeadActivity, new_event
from leadflow.logs import JsonFormatter
from leadflow.settings import Settings

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, its spans kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    tracing.configure("test", Settings(otel=True), exporter)
    yield exporter
    tracing.disable()


def contacted(lead_key: str) -> Envelope:
    now = datetime.now(UTC)
    data = LeadActivity(lead_key=lead_key, activity="contacted", occurred_at=now, source="crm")
    return new_event("lead.contacted", data, source="/test", time=now)


def traceparent_of(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def by_name(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def test_without_tracing_nothing_is_recorded_or_carried() -> None:
    assert not tracing.enabled()
    assert tracing.current_traceparent() is None
    assert tracing.traceparent_for("lk_a") is None
    assert tracing.message("t", "k", b"v", None) == ("t", "k", b"v", [STRUCTURED])
    with tracing.consuming("scoring", [contacted("lk_a")], {}):
        assert tracing.traceparent_for("lk_a") is None
    assert tracing.configure("test", Settings(otel=False)) is None
    assert not tracing.enabled()


async def test_traceparent_round_trips_through_kafka_headers() -> None:
    bus = InMemoryBus()
    await bus.publish_many(
        [tracing.message("leads.received", "lk_a", b"{}", PARENT), ("leads.received", "k", b"")]
    )
    traced, untraced = bus.topics["leads.received"]
    assert traced.headers == [
        ("content-type", b"application/cloudevents+json; charset=UTF-8"),
        ("traceparent", PARENT.encode()),
    ]
    assert tracing.traceparent_in(traced.headers) == PARENT
    assert tracing.traceparent_in(untraced.headers) is None


def test_one_event_is_handled_in_a_span_of_its_leads_trace(
    spans: InMemorySpanExporter,
) -> None:
    event = contacted("lk_a")
    with tracing.consuming("router", [event], {event.id: PARENT}):
        current = tracing.current_traceparent()
        assert tracing.traceparent_for("lk_a") == current
    [span] = spans.get_finished_spans()
    assert span.name == "router lead.contacted"
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None
    assert f"{span.parent.trace_id:032x}" == PARENT.split("-")[1]
    assert f"{span.parent.span_id:016x}" == PARENT.split("-")[2]
    assert current == traceparent_of(span)
    assert span.attributes is not None
    assert span.attributes["leadflow.lead_key"] == "lk_a"
    assert span.attributes["messaging.message.id"] == event.id


def test_a_batch_of_leads_continues_each_leads_own_trace(spans: InMemorySpanExporter) -> None:
    first, second, untraced = contacted("lk_a"), contacted("lk_b"), contacted("lk_c")
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    parents = {first.id: PARENT, second.id: other}
    with tracing.consuming("sla-monitor", [first, second, untraced], parents):
        written = {key: tracing.traceparent_for(key) for key in ("lk_a", "lk_b", "lk_c")}
        batch_span = tracing.current_traceparent()
        # Something about a lead the batch did not bring carries on with the batch's span.
        elsewhere = tracing.traceparent_for("lk_other")
    events = {
        s.attributes["leadflow.lead_key"]: s
        for s in by_name(spans, "sla-monitor lead.contacted")
        if s.attributes
    }
    [batch] = by_name(spans, "sla-monitor batch")
    # Each lead's work is a span in its own trace, and what the batch writes about the lead
    # continues that span; the batch's own span links them all.
    assert events["lk_a"].context.trace_id == int(PARENT.split("-")[1], 16)
    assert events["lk_b"].context.trace_id == int(other.split("-")[1], 16)
    assert events["lk_c"].parent is None  # published without a trace: a trace of its own
    assert written == {key: traceparent_of(span) for key, span in events.items()}
    assert batch_span == traceparent_of(batch)
    assert {link.context.span_id for link in batch.links} == {
        s.context.span_id for s in events.values()
    }
    assert elsewhere == batch_span
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 3


def test_a_failing_batch_marks_every_span_failed(spans: InMemorySpanExporter) -> None:
    events = [contacted("lk_a"), contacted("lk_b")]
    with pytest.raises(RuntimeError), tracing.consuming("scoring", events, {}):
        raise RuntimeError("handler bug")
    finished = spans.get_finished_spans()
    assert len(finished) == 3
    assert all(s.status.status_code is trace.StatusCode.ERROR for s in finished)


def test_a_stored_trace_context_is_continued_and_a_missing_one_starts_a_trace(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.continued("sla-monitor sla.breached", PARENT):
        pass
    with tracing.continued("sla-monitor sla.breached", None):
        pass
    with tracing.continued("sla-monitor sla.breached", "not a traceparent"):
        pass
    continued, fresh, malformed = spans.get_finished_spans()
    assert continued.parent is not None
    assert continued.context.trace_id == int(PARENT.split("-")[1], 16)
    assert fresh.parent is None
    assert malformed.parent is None


def log_line(message: str) -> dict[str, object]:
    record = logging.LogRecord("leadflow.test", logging.INFO, __file__, 1, message, None, None)
    entry: dict[str, object] = orjson.loads(JsonFormatter("router").format(record))
    return entry


def test_log_lines_carry_the_current_trace_and_span_ids(spans: InMemorySpanExporter) -> None:
    assert "trace_id" not in log_line("outside any span")
    with tracing.continued("router lead.scored", PARENT):
        inside = log_line("assigned")
        current = tracing.current_traceparent()
    assert current is not None
    assert inside["trace_id"] == PARENT.split("-")[1]
    assert inside["span_id"] == current.split("-")[2]


def test_the_content_type_is_added_once_and_old_records_without_it_still_read() -> None:
    assert structured([]) == [STRUCTURED]
    assert structured([("traceparent", PARENT.encode())]) == [
        STRUCTURED,
        ("traceparent", PARENT.encode()),
    ]
    already = [("content-type", b"application/cloudevents+json; charset=UTF-8")]
    assert structured(already) == already
    old = Record("leads.received", 0, 0, b"k", b"{}", [("traceparent", PARENT.encode())])
    assert tracing.traceparent_in(old.headers) == PARENT


def test_record_headers_without_a_traceparent_read_as_none() -> None:
    record = Record("leads.received", 0, 0, b"k", b"{}", [("leadflow-consumer", b"x")])
    assert tracing.traceparent_in(record.headers) is None


async def test_a_webhook_sent_in_a_span_tells_the_receiver_its_trace(
    spans: InMemorySpanExporter,
) -> None:
    received: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    note = Notification("webhook", "https://rep.example/hook", "New lead", "", "k", {"a": 1})
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        sender = WebhookSender(client)
        await sender.send(note)
        with tracing.continued("router notify webhook", PARENT):
            current = tracing.current_traceparent()
            await sender.send(note)
    untraced, traced = received
    assert "traceparent" not in untraced.headers
    assert traced.headers["traceparent"] == current
