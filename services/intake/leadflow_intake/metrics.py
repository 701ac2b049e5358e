"""The intake's own Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

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
    "Time for the broker to acknowledge lead events, by path (direct, or relayed from the spool).",
    ["path"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_IGNORED = Counter(
    "leadflow_intake_events_ignored_total",
    "Items of an accepted delivery that carried no lead (e.g. HubSpot events without identity).",
    ["source"],
)
SPOOLED = Counter(
    "leadflow_intake_spooled_events_total",
    "Events written to the local spool, by why (timeout, error, behind: the spool was not empty).",
    ["reason"],
)
RELAYED = Counter(
    "leadflow_intake_relayed_events_total", "Events relayed from the spool to the broker."
)
SPOOL_DEPTH = Gauge(
    "leadflow_intake_spool_depth_events", "Events in the local spool waiting for the broker."
)
SPOOL_BYTES = Gauge("leadflow_intake_spool_bytes", "Bytes of the local spool's segment files.")
