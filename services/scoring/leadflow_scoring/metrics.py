"""The scoring service's own Prometheus metrics."""

from prometheus_client import Counter

SCORED = Counter(
    "leadflow_scoring_leads_scored_total", "Leads scored, by resulting tier.", ["tier"]
)
