"""ROI: the maximum cost per lead, profit per sale, and flags, against hand-computed answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadflow.config import Reporting
from leadflow_sla.reporting.lifecycle import Lifecycle
from leadflow_sla.reporting.roi import Cost, effective_costs, lead_profit, max_cost_per_lead, roi

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
REPORTING = Reporting.model_validate(
    {
        "gross_margin": 0.8,
        "target_roi": 0.25,
        "segments": [
            {"name": "enterprise", "when": [{"field": "lead.company.size", "gte": 1000}]},
            {
                "name": "smb",
                "when": [{"field": "lead.company.size", "lt": 1000}],
                "gross_margin": 0.5,
                "target_roi": 0.5,
                "cost_per_lead": 100,
            },
        ],
        "campaign_costs": {"spring": 40},
    }
)


def lead(n: int, segment: str, campaign: str | None = None, **fields: object) -> Lifecycle:
    return Lifecycle(
        f"lk_{n}",
        first_touch_at=T0,
        first_segment=segment,
        last_segment=segment,
        first_campaign=campaign,
        **fields,  # type: ignore[arg-type]
    )


def won(n: int, segment: str, revenue: float, campaign: str | None = None) -> Lifecycle:
    return lead(n, segment, campaign, won_at=T0, revenue=revenue, revenue_without_profit=revenue)


def test_the_worked_example_4000_profit_7_percent_25_roi_is_224() -> None:
    assert max_cost_per_lead(4000, 0.07, 0.25) == pytest.approx(224.0)


def test_enterprise_100_leads_7_sales_of_5000_at_80_percent_margin_afford_224() -> None:
    leads = [won(i, "enterprise", 5000.0) for i in range(7)]
    leads += [lead(i, "enterprise") for i in range(7, 100)]
    costs = {("segment", "enterprise"): Cost(250.0, "api")}
    [row] = [
        r for r in roi(leads, REPORTING, "segment", "first", costs).rows if r.key == "enterprise"
    ]
    assert (row.leads, row.sales, row.conversion) == (100, 7, 0.07)
    assert (row.revenue, row.profit, row.profit_per_sale) == (35000.0, 28000.0, 4000.0)
    assert (row.gross_margin, row.target_roi) == (0.8, 0.25)
    assert row.max_cost_per_lead == 224.0
    # 250 a lead: 26 over the maximum, 11.61 % over; 25,000 spent for 28,000 profit.
    assert (row.cost_per_lead, row.cost_origin, row.verdict) == (250.0, "api", "over")
    assert (row.over_by, row.over_pct) == (26.0, 0.1161)
    assert (row.spend, row.realized_roi) == (25000.0, 0.12)


def test_segment_margin_and_roi_overrides_and_reported_profit() -> None:
    # smb: margin 0.5, target ROI 0.5, cost 100 from the config.
    leads = [
        won(1, "smb", 2000.0),  # profit 1000 by margin
        lead(2, "smb", won_at=T0, revenue=3000.0, reported_profit=2000.0),  # CRM said 2000
        lead(3, "smb"),
        lead(4, "smb"),
    ]
    assert lead_profit(leads[0], REPORTING, "first") == 1000.0
    assert lead_profit(leads[1], REPORTING, "first") == 2000.0
    report = roi(leads, REPORTING, "segment", "first", effective_costs(REPORTING, {}))
    [row] = [r for r in report.rows if r.key == "smb"]
    # profit per sale 1500, conversion 0.5, ROI 0.5 → 1500 / 1.5 * 0.5 = 500 ≥ 100.
    assert (row.profit_per_sale, row.conversion, row.max_cost_per_lead) == (1500.0, 0.5, 500.0)
    assert (row.cost_per_lead, row.cost_origin, row.verdict, row.over_by) == (
        100.0,
        "config",
        "within",
        0.0,
    )
    assert (row.spend, row.realized_roi) == (400.0, 6.5)
    assert report.flagged == 0


def test_every_segment_has_a_row_even_without_leads_and_no_sales_means_no_maximum() -> None:
    report = roi([lead(1, "smb")], REPORTING, "segment", "first", effective_costs(REPORTING, {}))
    rows = {r.key: r for r in report.rows}
    assert set(rows) == {"enterprise", "smb", "other"}
    assert (rows["smb"].max_cost_per_lead, rows["smb"].verdict) == (None, "no_sales")
    assert (rows["smb"].spend, rows["smb"].realized_roi) == (100.0, -1.0)
    assert (rows["enterprise"].leads, rows["enterprise"].verdict) == (0, "no_cost")


def test_by_campaign_uses_campaign_costs_and_each_lead_s_segment_margin() -> None:
    leads = [
        won(1, "enterprise", 1000.0, "spring"),  # profit 800 (enterprise margin 0.8)
        won(2, "smb", 1000.0, "spring"),  # profit 500 (smb margin 0.5)
        lead(3, "smb", "spring"),
        lead(4, "smb", "spring"),
        lead(5, "smb", None),
    ]
    report = roi(leads, REPORTING, "campaign", "first", effective_costs(REPORTING, {}))
    spring = next(r for r in report.rows if r.key == "spring")
    # profit 1300 over 2 sales = 650; conversion 0.5; default ROI 0.25 → 650 / 1.25 * 0.5 = 260.
    assert (spring.profit, spring.profit_per_sale, spring.max_cost_per_lead) == (
        1300.0,
        650.0,
        260.0,
    )
    assert (spring.gross_margin, spring.target_roi) == (None, 0.25)
    assert (spring.cost_per_lead, spring.verdict) == (40.0, "within")
    assert next(r for r in report.rows if r.key == "(none)").verdict == "no_cost"


def test_run_time_costs_override_configured_ones_and_flagged_rows_come_first() -> None:
    costs = effective_costs(REPORTING, {("segment", "smb"): 900.0, ("campaign", "x"): 5.0})
    assert costs["segment", "smb"] == Cost(900.0, "api")
    assert costs["campaign", "spring"] == Cost(40.0, "config")
    leads = [won(1, "smb", 2000.0), lead(2, "smb"), won(3, "enterprise", 100.0)]
    report = roi(leads, REPORTING, "segment", "first", costs)
    # smb: profit/sale 1000, conversion 0.5, ROI 0.5 → 333.33; 900 is 566.67 over.
    assert report.rows[0].key == "smb"
    assert (report.rows[0].max_cost_per_lead, report.rows[0].over_by) == (333.33, 566.67)
    assert report.flagged == 1
