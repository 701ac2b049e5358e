"""The SLA monitor's own Prometheus metrics.

Alert deliveries are counted by the notification dispatcher
(`leadflow_notifications_{sent,retried,failed}_total{service="sla-monitor"}`, by channel).
"""

from prometheus_client import Counter, Gauge, Histogram

OPEN_TIMERS = Gauge("leadflow_sla_open_timers", "Ladder timers (warning, breach, escalation) open.")
OPEN_WINDOWS = Gauge(
    "leadflow_sla_open_windows",
    "Follow-up windows open (leads not yet contacted), by team.",
    ["team"],
)
OVERDUE_WINDOWS = Gauge(
    "leadflow_sla_overdue_windows", "Open follow-up windows past their due time, by team.", ["team"]
)
ALERTS = Counter(
    "leadflow_sla_alerts_total", "SLA alerts raised, by stage and team.", ["stage", "team"]
)
BREACHES = Counter("leadflow_sla_breaches_total", "Follow-up windows missed, by team.", ["team"])
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
HORIZON_TIMERS = Gauge(
    "leadflow_sla_horizon_timers", "Timer due times held in memory (the near horizon)."
)
