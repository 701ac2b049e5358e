"""The scoring service's own Prometheus metrics."""

from prometheus_client import Counter

SCORED = Counter(
    "leadflow_scoring_leads_scored_total", "Leads scored, by resulting tier.", ["tier"]
)
QUALIFIED = Counter(
    "leadflow_scoring_mqls_total",
    "Leads that became MQLs, by what qualified them (threshold, grade, hand-raise).",
    ["qualified_by"],
)
MERGES = Counter(
    "leadflow_scoring_profiles_merged_total",
    "Profiles absorbed into another when an event showed they are one person.",
)
REFOLDS = Counter(
    "leadflow_scoring_aggregates_refolded_total",
    "Person aggregates folded again from all their touches (after the engagement rules changed).",
)
