"""Prometheus metrics: the `/metrics` route and the metrics every consumer shares.

Names follow `leadflow_<service>_<noun>_<unit>`; labels stay bounded (topics, event
types, outcomes — never lead ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
AGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def add_metrics_route(app: FastAPI) -> None:
    """Serve the process's metrics at `/metrics` in the Prometheus text format."""

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@dataclass(frozen=True)
class ConsumerMetrics:
    """What every consuming service reports about its events, inbox, outbox and DLQ."""

    consumed: Counter
    duplicates: Counter
    dead_lettered: Counter
    produced: Counter
    processing_seconds: Histogram
    batch_size: Histogram
    outbox_pending: Gauge
    consumer_lag: Gauge


@cache
def consumer_metrics(service: str) -> ConsumerMetrics:
    """The shared consumer metrics of `service` (created once per process)."""
    prefix = f"leadflow_{service}"
    return ConsumerMetrics(
        consumed=Counter(f"{prefix}_events_consumed_total", "Events consumed, by type.", ["type"]),
        duplicates=Counter(
            f"{prefix}_events_duplicate_total", "Redelivered events dropped by the inbox."
        ),
        dead_lettered=Counter(
            f"{prefix}_events_dead_lettered_total",
            "Records sent to the dead-letter topic, by reason.",
            ["reason"],
        ),
        produced=Counter(
            f"{prefix}_events_produced_total",
            "Events relayed from the outbox, by topic.",
            ["topic"],
        ),
        processing_seconds=Histogram(
            f"{prefix}_batch_processing_seconds",
            "Time to process one consumed batch, commit included.",
            buckets=LATENCY_BUCKETS,
        ),
        batch_size=Histogram(
            f"{prefix}_batch_records", "Records per consumed batch.", buckets=(1, 5, 20, 50, 200)
        ),
        outbox_pending=Gauge(f"{prefix}_outbox_pending_events", "Outbox rows not yet relayed."),
        consumer_lag=Gauge(
            f"{prefix}_consumer_lag_messages", "Messages behind the end of assigned partitions."
        ),
    )
