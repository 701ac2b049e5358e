"""The router's own Prometheus metrics."""

from prometheus_client import Counter, Histogram

from leadflow.metrics import AGE_BUCKETS

ASSIGNMENTS = Counter(
    "leadflow_router_assignments_total",
    "Leads assigned or queued, by team and outcome.",
    ["team", "outcome"],
)
END_TO_END = Histogram(
    "leadflow_router_lead_age_at_assignment_seconds",
    "Time from the webhook's arrival to the routing decision.",
    buckets=AGE_BUCKETS,
)
