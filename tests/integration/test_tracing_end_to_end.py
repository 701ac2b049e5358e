"""One trace per lead, for real: a signed webhook sent in a trace of the test's own, then the
four service processes on a real broker (SQLite, then PostgreSQL) export their spans over
OTLP/HTTP to a receiver in the test, and every hop is a child of the one before it:

    webhook (the test) -> intake HTTP span -> scoring's span for lead.received
    -> router's span for lead.scored -> SLA monitor's span for lead.assigned
    -> the breach alert it fires 5 s later -> the alert email to the manager.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from leadflow.settings import DEV_SECRETS
from leadflow.webhooks import sign
from tests.fixtures.otlp import ReceivedSpan, Spans, otlp_receiver
from tests.fixtures.receivers import Mailbox, smtp_server
from tests.fixtures.stack import Stack, lead_body, stack_per_database

pytestmark = pytest.mark.integration

SERVER, CONSUMER, PRODUCER = 2, 5, 4  # OTLP span kinds


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[str, Spans, int, Mailbox]]:
    """The OTLP receiver and an SMTP server, for the module."""
    with otlp_receiver() as (endpoint, spans), smtp_server() as (smtp_port, mailbox):
        yield endpoint, spans, smtp_port, mailbox


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def traced(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    receivers: tuple[str, Spans, int, Mailbox],
) -> Iterator[tuple[Stack, Spans, Mailbox]]:
    """Broker + four services with tracing on, exporting to the receiver."""
    endpoint, spans, smtp_port, mailbox = receivers
    env = {
        "LEADFLOW_OTEL": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        # Export within a fifth of a second instead of every 5 s.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "LEADFLOW_SMTP_HOST": "127.0.0.1",
        "LEADFLOW_SMTP_PORT": str(smtp_port),
        "LEADFLOW_SMTP_SENDER": "alerts@leadflow.example",
    }
    for stack in stack_per_database(request, tmp_path_factory, "tracing", env=env):
        yield stack, spans, mailbox


def post_in_trace(stack: Stack, body: dict[str, Any], traceparent: str) -> httpx.Response:
    """POST a signed webhook to the intake as a sender would from inside its own trace."""
    raw = orjson.dumps(body)
    msg_id = f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time())
    return httpx.post(
        f"{stack.services['intake'].url}/v1/webhooks/web",
        content=raw,
        headers={
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(DEV_SECRETS["web"], msg_id, timestamp, raw),
            "traceparent": traceparent,
        },
        timeout=10,
    )


def wait_for_span(
    spans: Spans, trace_id: str, service: str, name: str, timeout_s: float = 30.0
) -> ReceivedSpan:
    """The first span `name` of `service` in the trace, once it has been exported."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [s for s in spans.of_trace(trace_id) if (s.service, s.name) == (service, name)]
        if found:
            return found[0]
        time.sleep(0.1)
    seen = sorted({(s.service, s.name) for s in spans.of_trace(trace_id)})
    raise AssertionError(f"no span {name!r} of {service} in the trace; it holds {seen}")


def the_parent_of(spans: Spans, child: ReceivedSpan) -> ReceivedSpan:
    [parent] = [s for s in spans.of_trace(child.trace_id) if s.span_id == child.parent_span_id]
    return parent


def test_a_leads_journey_is_one_trace_across_the_four_services(
    traced: tuple[Stack, Spans, Mailbox],
) -> None:
    stack, spans, mailbox = traced
    trace_id, sender_span = secrets.token_hex(16), secrets.token_hex(8)
    email = f"traced.{uuid.uuid4().hex[:8]}@bigco.example"
    response = post_in_trace(stack, lead_body(email), f"00-{trace_id}-{sender_span}-01")
    assert response.status_code == 202, response.text
    lead_key = response.json()["lead_key"]

    alert = wait_for_span(spans, trace_id, "leadflow-sla-monitor", "sla-monitor sla.breached")
    sent = wait_for_span(spans, trace_id, "leadflow-sla-monitor", "sla-monitor notify email")
    scored = wait_for_span(spans, trace_id, "leadflow-scoring", "leadflow-scoring lead.received")
    routed = wait_for_span(spans, trace_id, "leadflow-router", "leadflow-router lead.scored")
    opened = wait_for_span(
        spans, trace_id, "leadflow-sla-monitor", "leadflow-sla-monitor lead.assigned"
    )

    # The intake's span for the webhook continues the sender's trace ...
    webhook = the_parent_of(spans, scored)
    assert (webhook.service, webhook.kind) == ("leadflow-intake", SERVER)
    assert webhook.name == "POST /v1/webhooks/{source}"
    assert webhook.parent_span_id == sender_span
    # ... and each hop after it is a child of the one before, across processes and Kafka.
    assert (scored.kind, routed.kind, opened.kind) == (CONSUMER, CONSUMER, CONSUMER)
    assert routed.parent_span_id == scored.span_id
    assert opened.parent_span_id == routed.span_id
    # The alert, fired by a timer seconds later, continues the assignment's span, and the
    # email that tells the manager is sent in a span of the alert.
    assert alert.parent_span_id == opened.span_id
    assert (sent.parent_span_id, sent.kind, sent.failed) == (alert.span_id, PRODUCER, False)
    assert not any(s.failed for s in spans.of_trace(trace_id))
    assert [m for m in mailbox.to("grace@example.com") if lead_key in str(m.get_payload())]
