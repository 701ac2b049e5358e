"""The SLA monitor's own Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

OPEN_TIMERS = Gauge("leadflow_sla_open_timers", "Follow-up windows currently open.")
ALERTS = Counter(
    "leadflow_sla_alerts_total", "SLA alerts raised, by stage and team.", ["stage", "team"]
)
SPEED_TO_LEAD = Histogram(
    "leadflow_sla_speed_to_lead_seconds",
    "Time from assignment to the first contact.",
    buckets=(60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600, 72 * 3600),
)
TIMER_LATENESS = Histogram(
    "leadflow_sla_timer_lateness_seconds",
    "How long after its due time a timer fired.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
