"""Reporting's own Prometheus metrics."""

from prometheus_client import Counter

LIFECYCLE_EVENTS = Counter(
    "leadflow_sla_reporting_lifecycle_events_total",
    "Events folded into lead lifecycles, by event type.",
    ["type"],
)
COSTS_CHANGED = Counter(
    "leadflow_sla_reporting_cost_changes_total",
    "Costs per lead set or removed through the API, by kind.",
    ["kind"],
)
