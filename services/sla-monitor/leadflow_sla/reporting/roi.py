"""ROI arithmetic: profit per sale, conversion, and the maximum affordable cost per lead.

maximum cost per lead = profit per sale / (1 + target ROI) * lead-to-sale conversion
($4,000 profit, 7 % conversion, 25 % target ROI → $224). Pure: no IO, no clock. The
report is built from leads counted per group and segment (`SegmentTally`), by the database
(`tallies`) or over lifecycles (`segment_tallies`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from leadflow.config import Reporting
from leadflow_sla.reporting.domain import NONE_LABEL, dimension, rate
from leadflow_sla.reporting.lifecycle import Lifecycle
from leadflow_sla.reporting.query import Touchpoint

CostKind = Literal["segment", "campaign"]
Verdict = Literal["over", "within", "no_cost", "no_sales"]


def max_cost_per_lead(profit_per_sale: float, conversion: float, target_roi: float) -> float:
    """The most a lead may cost to still earn `target_roi` on what is spent on leads."""
    return profit_per_sale / (1 + target_roi) * conversion


def lead_profit(lc: Lifecycle, reporting: Reporting, touch: Touchpoint) -> float:
    """Gross profit of the lead's won deals: as the CRM reported it, else revenue * margin."""
    margin = _margin(reporting, dimension(lc, "segment", touch))
    return lc.reported_profit + lc.revenue_without_profit * margin


@dataclass(frozen=True)
class Cost:
    """What a lead of a segment or campaign actually costs, and who said so."""

    cost_per_lead: float
    origin: Literal["config", "api"]


def effective_costs(
    reporting: Reporting, overrides: Mapping[tuple[str, str], float]
) -> dict[tuple[str, str], Cost]:
    """Costs per (kind, name): run-time overrides win over the configuration."""
    costs: dict[tuple[str, str], Cost] = {}
    for segment in reporting.segments:
        if segment.cost_per_lead is not None:
            costs["segment", segment.name] = Cost(segment.cost_per_lead, "config")
    for campaign, cost in reporting.campaign_costs.items():
        costs["campaign", campaign] = Cost(cost, "config")
    for key, cost in overrides.items():
        costs[key] = Cost(cost, "api")
    return costs


@dataclass(frozen=True)
class RoiRow:
    """One segment's or campaign's economics, and whether its leads cost too much."""

    key: str
    leads: int
    sales: int
    conversion: float | None
    revenue: float
    profit: float
    profit_per_sale: float | None
    gross_margin: float | None
    target_roi: float
    max_cost_per_lead: float | None
    cost_per_lead: float | None
    cost_origin: str | None
    spend: float | None
    realized_roi: float | None
    over_by: float | None
    over_pct: float | None
    verdict: Verdict


@dataclass(frozen=True)
class RoiReport:
    """ROI per segment or campaign; `flagged` counts the rows whose leads cost too much."""

    by: CostKind
    currency: str
    rows: list[RoiRow]
    flagged: int


@dataclass(frozen=True)
class SegmentTally:
    """The leads of one group (a segment or campaign, as stored) in one segment: how many,
    how many were won, their revenue, the profit the CRM reported and the revenue it
    reported no profit for. What the database counts in place of the lifecycles."""

    key: str | None
    segment: str | None
    leads: int
    sales: int
    revenue: float
    reported_profit: float
    revenue_without_profit: float


def segment_tallies(
    lifecycles: Iterable[Lifecycle], by: CostKind, touch: Touchpoint
) -> list[SegmentTally]:
    """The leads counted per group and segment (the ROI report's input, from lifecycles)."""
    tallies: dict[tuple[str, str], SegmentTally] = {}
    for lc in lifecycles:
        key = (dimension(lc, by, touch), dimension(lc, "segment", touch))
        found = tallies.get(key) or SegmentTally(*key, 0, 0, 0.0, 0.0, 0.0)
        tallies[key] = SegmentTally(
            key=found.key,
            segment=found.segment,
            leads=found.leads + 1,
            sales=found.sales + (lc.won_at is not None),
            revenue=found.revenue + lc.revenue,
            reported_profit=found.reported_profit + lc.reported_profit,
            revenue_without_profit=found.revenue_without_profit + lc.revenue_without_profit,
        )
    return list(tallies.values())


def roi(
    lifecycles: Sequence[Lifecycle],
    reporting: Reporting,
    by: CostKind,
    touch: Touchpoint,
    costs: Mapping[tuple[str, str], Cost],
) -> RoiReport:
    """Measured conversion and profit per sale, the maximum cost per lead, and flags."""
    return roi_of(segment_tallies(lifecycles, by, touch), reporting, by, costs)


def roi_of(
    tallies: Iterable[SegmentTally],
    reporting: Reporting,
    by: CostKind,
    costs: Mapping[tuple[str, str], Cost],
) -> RoiReport:
    """The ROI report from the leads counted per group and segment."""
    groups: dict[str, list[SegmentTally]] = defaultdict(list)
    for tally in tallies:
        groups[tally.key or NONE_LABEL].append(tally)
    if by == "segment":
        for name in reporting.segment_names():
            groups.setdefault(name, [])
    rows = [_row(key, group, reporting, by, costs.get((by, key))) for key, group in groups.items()]
    rows.sort(key=lambda row: (row.verdict != "over", -(row.over_by or 0), -row.leads, row.key))
    return RoiReport(
        by=by,
        currency=reporting.currency,
        rows=rows,
        flagged=sum(1 for row in rows if row.verdict == "over"),
    )


def _margin(reporting: Reporting, segment_name: str | None) -> float:
    """The gross margin of a segment's deals: its own, else the configured default."""
    segment = reporting.segment(segment_name or NONE_LABEL)
    return segment.gross_margin if segment and segment.gross_margin else reporting.gross_margin


def _row(
    key: str,
    tallies: list[SegmentTally],
    reporting: Reporting,
    by: CostKind,
    cost: Cost | None,
) -> RoiRow:
    leads = sum(t.leads for t in tallies)
    sales = sum(t.sales for t in tallies)
    profit = sum(
        t.reported_profit + t.revenue_without_profit * _margin(reporting, t.segment)
        for t in tallies
    )
    segment = reporting.segment(key) if by == "segment" else None
    margin = _margin(reporting, key) if by == "segment" else None
    target = segment.target_roi if segment and segment.target_roi is not None else None
    target_roi = reporting.target_roi if target is None else target
    maximum = (
        max_cost_per_lead(profit / sales, sales / leads, target_roi) if sales and leads else None
    )
    spend = cost.cost_per_lead * leads if cost is not None else None
    over_by = None
    verdict: Verdict
    if cost is None:
        verdict = "no_cost"
    elif maximum is None:
        verdict = "no_sales"
    else:
        over_by = max(0.0, cost.cost_per_lead - maximum)
        verdict = "over" if cost.cost_per_lead > maximum else "within"
    return RoiRow(
        key=key,
        leads=leads,
        sales=sales,
        conversion=rate(sales, leads),
        revenue=round(sum(t.revenue for t in tallies), 2),
        profit=round(profit, 2),
        profit_per_sale=round(profit / sales, 2) if sales else None,
        gross_margin=margin,
        target_roi=target_roi,
        max_cost_per_lead=None if maximum is None else round(maximum, 2),
        cost_per_lead=None if cost is None else cost.cost_per_lead,
        cost_origin=None if cost is None else cost.origin,
        spend=None if spend is None else round(spend, 2),
        realized_roi=rate(profit - spend, spend) if spend else None,
        over_by=None if over_by is None else round(over_by, 2),
        over_pct=rate(over_by, maximum) if over_by is not None and maximum else None,
        verdict=verdict,
    )
