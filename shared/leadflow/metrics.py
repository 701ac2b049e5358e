"""Prometheus metrics: the `/metrics` route and the metrics every consumer shares.

A service's own measurements are named `leadflow_<service>_<noun>_<unit>`; what every
service measures alike is one name with a `service` label. Labels stay bounded (topics,
event types, outcomes — never lead ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any
from wsgiref.simple_server import WSGIServer

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from leadflow import __version__
from leadflow.auth import require
from leadflow.settings import Settings

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
AGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def add_metrics_route(app: FastAPI, settings: Settings) -> None:
    """Serve the process's metrics at `/metrics` in the Prometheus text format, for a
    `metrics:read` token; with `LEADFLOW_METRICS_PORT`, on that port instead (`serve`)."""
    if settings.metrics_port is not None:
        return

    @app.get("/metrics", include_in_schema=False, dependencies=[require("metrics:read")])
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def serve_metrics_port(settings: Settings) -> WSGIServer | None:
    """Serve `/metrics` on `LEADFLOW_METRICS_PORT`, in a thread, when it is set."""
    if settings.metrics_port is None:
        return None
    server, _ = start_http_server(settings.metrics_port, addr=settings.host)
    return server


class Labelled:
    """A labelled metric with its first label (`service`) already bound."""

    def __init__(self, metric: Counter | Gauge | Histogram, service: str) -> None:
        self._metric = metric
        self._service = service

    def labels(self, *values: str) -> Any:
        """The child for the remaining label values."""
        return self._metric.labels(self._service, *values)


@dataclass(frozen=True)
class ConsumerMetrics:
    """What every consuming service reports about its events, inbox, outbox and DLQ."""

    service: str
    consumed: Labelled
    duplicates: Counter
    dead_lettered: Labelled
    produced: Labelled
    processing_seconds: Histogram
    batch_size: Histogram
    outbox_pending: Gauge
    consumer_lag: Labelled


# One metric per measurement, the service a label (`leadflow_events_consumed_total
# {service="router"}`): the same query and alert then covers every service.
_CONSUMED = Counter(
    "leadflow_events_consumed_total", "Events consumed, by service and type.", ["service", "type"]
)
_DUPLICATES = Counter(
    "leadflow_events_duplicate_total", "Redelivered events dropped by the inbox.", ["service"]
)
_DEAD_LETTERED = Counter(
    "leadflow_events_dead_lettered_total",
    "Records sent to the dead-letter topic, by service and reason.",
    ["service", "reason"],
)
_PRODUCED = Counter(
    "leadflow_events_produced_total",
    "Events relayed from the outbox, by service and topic.",
    ["service", "topic"],
)
_PROCESSING_SECONDS = Histogram(
    "leadflow_batch_processing_seconds",
    "Time to process one consumed batch, commit included.",
    ["service"],
    buckets=LATENCY_BUCKETS,
)
_BATCH_SIZE = Histogram(
    "leadflow_batch_records",
    "Records per consumed batch.",
    ["service"],
    buckets=(1, 5, 20, 50, 200),
)
_OUTBOX_PENDING = Gauge(
    "leadflow_outbox_pending_events", "Outbox rows not yet relayed.", ["service"]
)
_CONSUMER_LAG = Gauge(
    "leadflow_consumer_lag_messages",
    "Messages behind the end of the partitions this process holds, by consumer group; "
    "sum across replicas for a group's lag.",
    ["service", "group"],
)

BUILD_INFO = Gauge(
    "leadflow_build_info", "Always 1; the running version in the label.", ["version"]
)
BUILD_INFO.labels(__version__).set(1)


@cache
def consumer_metrics(service: str) -> ConsumerMetrics:
    """The shared consumer metrics of `service`, with its `service` label bound."""
    return ConsumerMetrics(
        service=service,
        consumed=Labelled(_CONSUMED, service),
        duplicates=_DUPLICATES.labels(service),
        dead_lettered=Labelled(_DEAD_LETTERED, service),
        produced=Labelled(_PRODUCED, service),
        processing_seconds=_PROCESSING_SECONDS.labels(service),
        batch_size=_BATCH_SIZE.labels(service),
        outbox_pending=_OUTBOX_PENDING.labels(service),
        consumer_lag=Labelled(_CONSUMER_LAG, service),
    )
