"""The router's own Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

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
REASSIGNMENTS = Counter(
    "leadflow_router_reassignments_total",
    "Escalated leads routed again, by outcome (assigned or queued).",
    ["outcome"],
)
SKIPPED = Counter(
    "leadflow_router_reps_skipped_total",
    "Reps passed over in routing decisions, by reason.",
    ["reason"],
)
QUEUED = Gauge(
    "leadflow_router_queued_leads",
    "Leads waiting in a team queue (seen by the last queue retry).",
)
ADMIN_CHANGES = Counter(
    "leadflow_router_admin_changes_total",
    "Run-time changes made through the admin API, by action.",
    ["action"],
)
CLAIMS = Counter(
    "leadflow_router_pool_claims_total",
    "Claims of leads waiting in a team pool, by outcome (claimed, or why refused).",
    ["outcome"],
)
UNCLAIMED = Counter(
    "leadflow_router_pool_unclaimed_total",
    "Pool entries nobody claimed in time, by what followed (distributed, or kept waiting "
    "or queued).",
    ["outcome"],
)
