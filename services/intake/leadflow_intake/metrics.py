"""The intake's own Prometheus metrics."""

from prometheus_client import Counter, Histogram

from leadflow.metrics import LATENCY_BUCKETS

WEBHOOKS = Counter(
    "leadflow_intake_webhooks_total",
    "Webhooks answered, by source and outcome (accepted or the refusal reason).",
    ["source", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "leadflow_intake_request_seconds",
    "Time to answer a webhook, by source.",
    ["source"],
    buckets=LATENCY_BUCKETS,
)
PUBLISH_SECONDS = Histogram(
    "leadflow_intake_publish_seconds",
    "Time for the broker to acknowledge a lead event.",
    buckets=LATENCY_BUCKETS,
)
