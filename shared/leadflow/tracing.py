"""One trace per lead: W3C trace context from the webhook to the last alert about the lead.

With `LEADFLOW_OTEL=true` and the `otel` extra installed, `configure` installs the
OpenTelemetry SDK with an OTLP/HTTP exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`, the other
standard `OTEL_*` variables) and the service's name as `service.name`. The context then
travels as a W3C `traceparent`:

* HTTP: FastAPI's own instrumentation continues a caller's `traceparent` and makes the
  request's span current, so the intake's events start in the webhook's trace;
* Kafka: a `traceparent` header on every record the intake, the outbox relay or the fast
  path publishes (`message`), read back by `EventProcessor` (`traceparent_in`);
* the tables that hold work for later keep it in a `traceparent` column: the outbox, the
  intake's spool, SLA timers and notifications, so a lead spooled through an outage, an
  alert fired minutes later and an email sent after retries stay in the lead's trace.

Consumers apply batches of many leads at once (`consuming`): each event gets a span of
its own, a child of the span that published it, and what the batch writes about a lead
(outbox rows, timers, notifications, looked up by the lead's key with `traceparent_for`)
continues that lead's span. A batch of several events has a span of its own too, current
while the handler runs and linked to each event's span.

Without the SDK (only `opentelemetry-api`, which FastAPI requires) or with tracing off,
every function here is a no-op that costs one test of a module global.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from leadflow.bus import STRUCTURED, Headers, Message

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from leadflow.events import Envelope
    from leadflow.settings import Settings

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
# A W3C traceparent is 55 characters: version, trace id, span id and flags.
TRACEPARENT_LENGTH = 55

_PROPAGATOR = TraceContextTextMapPropagator()
_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()
_tracer: Tracer | None = None
_provider: TracerProvider | None = None
# While a consumer's batch is handled: each lead's key -> the traceparent of its event's span.
_LEADS: ContextVar[Mapping[str, str] | None] = ContextVar("leadflow_trace_leads", default=None)


def configure(
    service: str, settings: Settings, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Start tracing for `service` when `LEADFLOW_OTEL` is on: the SDK's tracer provider
    (also made the global one, for FastAPI) exporting to `exporter`, by default OTLP over
    HTTP, in batches. Returns the provider, or None when tracing stays off."""
    global _tracer, _provider
    if not settings.otel:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        log.warning(
            "LEADFLOW_OTEL is on but the OpenTelemetry SDK is not installed: no spans are "
            "recorded. Install the `otel` extra (pip install 'leadflow[otel]')."
        )
        return None
    from leadflow import __version__

    resource = Resource.create(
        {
            "service.name": f"leadflow-{service}",
            "service.namespace": "leadflow",
            "service.version": __version__,
        }
    )
    provider = TracerProvider(resource=resource)
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)  # once per process: the SDK refuses a second one
    _provider = provider
    _tracer = provider.get_tracer("leadflow", __version__)
    return provider


def disable() -> None:
    """Stop recording spans here (what `configure` installed is flushed and shut down)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def provider() -> TracerProvider | None:
    """The tracer provider `configure` installed, if tracing is on."""
    return _provider


def enabled() -> bool:
    """Whether spans are recorded in this process."""
    return _tracer is not None


def current_traceparent() -> str | None:
    """The traceparent of the current span, None without one (or with tracing off)."""
    if _tracer is None:
        return None
    return _format(trace.get_current_span().get_span_context())


def traceparent_for(lead_key: str | None) -> str | None:
    """The traceparent to carry on with for what is written about `lead_key`: its event's
    span in the batch being handled, else the current span."""
    if _tracer is None:
        return None
    leads = _LEADS.get()
    if leads is not None and lead_key is not None and lead_key in leads:
        return leads[lead_key]
    return current_traceparent()


def name_request(route: str) -> None:
    """Name the current HTTP server span after `route` (a path template), for requests
    served before FastAPI's routing, which would have named it."""
    if _tracer is None:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"POST {route}")
        span.set_attribute("http.route", route)


def message(topic: str, key: str, value: bytes, traceparent: str | None) -> Message:
    """A message to publish: an event in CloudEvents structured mode (its `content-type`
    header), with a `traceparent` header when there is one."""
    if traceparent is None:
        return (topic, key, value, [STRUCTURED])
    return (topic, key, value, [STRUCTURED, (TRACEPARENT, traceparent.encode())])


def traceparent_in(headers: Headers) -> str | None:
    """The `traceparent` header of a consumed record, if any."""
    for name, value in headers:
        if name == TRACEPARENT:
            return value.decode(errors="replace")
    return None


def consuming(
    consumer: str, events: Sequence[Envelope], parents: Mapping[str, str]
) -> contextlib.AbstractContextManager[None]:
    """Spans for handling `events` (their traceparents by event id in `parents`): one per
    event, in its lead's trace, and one for the batch when it holds several."""
    if _tracer is None or not events:
        return _OFF
    return _consuming(_tracer, consumer, events, parents)


@contextlib.contextmanager
def _consuming(
    tracer: Tracer, consumer: str, events: Sequence[Envelope], parents: Mapping[str, str]
) -> Iterator[None]:
    spans = []
    leads: dict[str, str] = {}
    for event in events:
        span = tracer.start_span(
            f"{consumer} {event.type}",
            context=_context_of(parents.get(event.id)),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.consumer.group.name": consumer,
                "messaging.message.id": event.id,
                "leadflow.lead_key": event.subject,
            },
        )
        spans.append(span)
        leads[event.subject] = _format(span.get_span_context()) or ""
    current = spans[0]
    if len(spans) > 1:
        current = tracer.start_span(
            f"{consumer} batch",
            context=otel_context.Context(),
            kind=SpanKind.CONSUMER,
            links=[Link(span.get_span_context()) for span in spans],
            attributes={
                "messaging.consumer.group.name": consumer,
                "messaging.batch.message_count": len(spans),
            },
        )
    token = _LEADS.set(leads)
    try:
        with trace.use_span(current, end_on_exit=False):
            yield
    except BaseException as exc:
        for span in {*spans, current}:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        _LEADS.reset(token)
        if current is not spans[0]:
            current.end()
        for span in spans:
            span.end()


def continued(
    name: str,
    traceparent: str | None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> contextlib.AbstractContextManager[None]:
    """A span, current for the block, continuing the trace `traceparent` names (stored
    with a timer or a notification); a new trace without one."""
    if _tracer is None:
        return _OFF
    return _continued(_tracer, name, traceparent, kind, attributes or {})


@contextlib.contextmanager
def _continued(
    tracer: Tracer,
    name: str,
    traceparent: str | None,
    kind: SpanKind,
    attributes: Mapping[str, Any],
) -> Iterator[None]:
    with tracer.start_as_current_span(
        name, context=_context_of(traceparent), kind=kind, attributes=dict(attributes)
    ):
        yield


def _context_of(traceparent: str | None) -> otel_context.Context:
    """A context whose parent is the span `traceparent` names; empty (a new trace) when it
    is missing or malformed."""
    if not traceparent:
        return otel_context.Context()
    return _PROPAGATOR.extract({TRACEPARENT: traceparent}, context=otel_context.Context())


def _format(span: trace.SpanContext) -> str | None:
    if not span.is_valid:
        return None
    return f"00-{span.trace_id:032x}-{span.span_id:016x}-{int(span.trace_flags):02x}"


def log_fields() -> dict[str, str]:
    """`trace_id` and `span_id` of the current span, for a log line (empty without one)."""
    span = trace.get_current_span().get_span_context()
    if not span.is_valid:
        return {}
    return {"trace_id": f"{span.trace_id:032x}", "span_id": f"{span.span_id:016x}"}
