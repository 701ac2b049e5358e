"""The webhook's trace context goes with its events: straight to the broker, or through the
spool during an outage (kept on disk with each event, and read back from older records)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from leadflow import tracing
from leadflow.bus import STRUCTURED, Headers
from leadflow.bus.memory import InMemoryBus
from leadflow.events import LeadActivity, SerializedEvent, new_event
from leadflow.settings import Settings
from leadflow.supervisor import Supervisor
from leadflow_intake.app import create_app
from leadflow_intake.delivery import Delivery
from leadflow_intake.settings import IntakeSettings
from leadflow_intake.spool import Spool, SpooledEvent, decode, encode
from tests.fixtures import senders
from tests.fixtures.intake import send
from tests.fixtures.stack import CONFIG, lead_body

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure("intake", Settings(otel=True), exporter)
    yield exporter
    tracing.disable()


class SwitchableBus(InMemoryBus):
    """A broker that refuses every publish while `down`."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def publish(
        self, topic: str, key: str, value: bytes, headers: Headers | None = None
    ) -> None:
        if self.down:
            raise ConnectionError("broker down")
        await super().publish(topic, key, value, headers)


def received(lead_key: str) -> SerializedEvent:
    now = datetime.now(UTC)
    data = LeadActivity(lead_key=lead_key, activity="contacted", occurred_at=now, source="web")
    return SerializedEvent.of(new_event("lead.contacted", data, source="/test", time=now))


def payload(record: bytes) -> bytes:
    return record[8:]  # past length and checksum


def test_spooled_records_keep_the_trace_context() -> None:
    traced = SpooledEvent("leads.received", "lk_a", b'{"n": 1}', PARENT)
    untraced = SpooledEvent("leads.received", "lk_b", b'{"n": 2}')
    assert decode(payload(encode(traced))) == traced
    assert decode(payload(encode(untraced))) == untraced


def test_records_spooled_before_trace_contexts_read_alike() -> None:
    # The format of older intakes: topic length, topic, key length, key, value.
    older = b"\x00\x0eleads.received\x00\x04lk_a" + b'{"n": 1}'
    assert decode(older) == SpooledEvent("leads.received", "lk_a", b'{"n": 1}')


async def test_a_lead_spooled_through_an_outage_stays_in_the_webhooks_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    bus = SwitchableBus()
    spool = Spool(tmp_path)
    spool.open()
    intake = IntakeSettings(spool_dir=tmp_path, spool_after_s=0.2)
    delivery = Delivery(Settings(), intake, bus, spool)
    supervisor = Supervisor("intake", backoff_max_s=0.1)
    delivery.start(supervisor)
    try:
        with tracing.continued("POST /v1/webhooks/web", None):
            await delivery.submit([received("lk_direct")])
            direct = tracing.current_traceparent()
        bus.down = True
        with tracing.continued("POST /v1/webhooks/web", None):
            await delivery.submit([received("lk_spooled")])
            spooled = tracing.current_traceparent()
        assert spool.depth == 1
        [on_disk] = spool.peek(1).events
        assert on_disk.traceparent == spooled
        bus.down = False
        for _ in range(500):  # the relay retries within its backoff (0.1 s here)
            if len(bus.topics["leads.activity"]) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await delivery.stop()
        await supervisor.stop()
        spool.close()
    first, second = bus.topics["leads.activity"]
    assert (first.key, tracing.traceparent_in(first.headers)) == (b"lk_direct", direct)
    assert (second.key, tracing.traceparent_in(second.headers)) == (b"lk_spooled", spooled)
    assert direct != spooled
    # Both CloudEvents in structured mode, whichever way they went out.
    assert first.headers[0] == second.headers[0] == STRUCTURED


def test_a_webhooks_events_carry_the_trace_context_of_its_request(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    bus = InMemoryBus()
    settings = Settings(config=CONFIG, otel=True)
    app = create_app(settings, IntakeSettings(spool_dir=tmp_path), publisher=bus)
    with TestClient(app) as client:
        signed = senders.standard(lead_body("traced@example.com"))
        assert send(client, "web", signed).status_code == 202
    [request] = spans.get_finished_spans()
    assert (request.name, request.kind) == ("POST /v1/webhooks/{source}", SpanKind.SERVER)
    [record] = bus.topics["leads.received"]
    context = request.get_span_context()
    assert context is not None
    assert tracing.traceparent_in(record.headers) == (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    )
