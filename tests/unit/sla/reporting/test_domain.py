"""Report arithmetic on hand-made lifecycles, each figure checked against a hand count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadflow_sla.reporting.domain import (
    Sample,
    conversion,
    funnel,
    furthest_stage,
    quantile,
    quantile_ranks,
    reasons,
    response_seconds,
    speed,
)
from leadflow_sla.reporting.lifecycle import Lifecycle
from leadflow_sla.reporting.tallies import QUANTILES

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def lead(n: int, **fields: object) -> Lifecycle:
    return Lifecycle(f"lk_{n}", first_touch_at=T0, touches=1, **fields)  # type: ignore[arg-type]


def sales_ready(n: int, contact_s: float | None, **fields: object) -> Lifecycle:
    """An MQL assigned a minute after it arrived, contacted `contact_s` after arriving."""
    return lead(
        n,
        mql_at=at(1),
        ready_at=T0,
        assigned_at=at(60),
        contacted_at=None if contact_s is None else at(contact_s),
        **fields,
    )


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.9, 7.0),
        ([4.0, 1.0, 3.0, 2.0], 0.5, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 0.9, 3.7),
        ([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 110.0], 0.9, 100.0),
    ],
)
def test_quantile_interpolates_linearly(values: list[float], q: float, expected: float) -> None:
    assert quantile(values, q) == (None if expected is None else pytest.approx(expected))


def test_the_furthest_stage_counts_a_skipped_step_as_passed() -> None:
    assert furthest_stage(lead(1)) == 0
    assert furthest_stage(lead(2, won_at=at(9))) == 6
    assert furthest_stage(lead(3, mql_at=at(1), contacted_at=at(5))) == 3


STEPS = ("mql_at", "assigned_at", "contacted_at", "accepted_at", "converted_at", "won_at")


def through(n: int, steps: int, **fields: object) -> Lifecycle:
    """A lead that went `steps` stages past received, a second apart, plus `fields`."""
    reached: dict[str, object] = {name: at(i + 1) for i, name in enumerate(STEPS[:steps])}
    return lead(n, **reached, **fields)


LEADS = [
    through(1, 0),  # received only
    through(2, 0, rejected_at=at(99), rejection_reason="x"),  # rejected before any stage
    through(3, 1),  # MQL, never assigned
    through(4, 2),
    through(5, 3, rejected_at=at(4)),  # contacted, rejected at screening
    through(6, 4),
    through(7, 5, lost_at=at(6)),
    through(8, 5),
    through(9, 6, revenue=5000.0),
    lead(10, mql_at=at(1), won_at=at(6), revenue=1000.0),  # the CRM skipped the middle steps
]


def test_funnel_counts_conversion_and_leakage_per_stage() -> None:
    report = funnel(LEADS, "source", "first")
    rows = {s.stage: s for s in report.stages}
    # received 10; MQL 8 (3..10); assigned 7 (4..10); contacted 6 (5..10);
    # accepted 5 (6..10); SQL 4 (7..10); won 2 (9, 10).
    assert [s.leads for s in report.stages] == [10, 8, 7, 6, 5, 4, 2]
    assert rows["received"].from_previous is None
    assert rows["mql"].from_previous == 0.8
    assert rows["assigned"].from_previous == pytest.approx(0.875)
    assert rows["won"].from_previous == 0.5
    assert rows["won"].from_start == 0.2
    # Leakage into MQL: leads 1 and 2; lead 2 was rejected.
    assert (rows["mql"].leaked, rows["mql"].leaked_rejected, rows["mql"].leaked_open) == (2, 1, 1)
    # Leakage into accepted: lead 5, rejected at screening.
    assert (rows["accepted"].leaked, rows["accepted"].leaked_rejected) == (1, 1)
    # Leakage into won: leads 7 (lost) and 8 (open).
    assert (rows["won"].leaked, rows["won"].leaked_lost, rows["won"].leaked_open) == (2, 1, 1)
    assert report.mql_to_sql == 0.5  # 4 SQLs of 8 MQLs
    assert report.leads == 10


def test_conversion_per_group_has_sales_revenue_and_average_deal() -> None:
    row = conversion("web", LEADS)
    assert (row.leads, row.mqls, row.sqls, row.won) == (10, 8, 4, 2)
    assert (row.lead_to_sale, row.mql_to_sql) == (0.2, 0.5)
    assert (row.revenue, row.average_deal) == (6000.0, 3000.0)
    empty = conversion("none", [])
    assert (empty.lead_to_sale, empty.average_deal) == (None, None)


def test_funnel_breakdown_groups_by_attribution_and_ranks_by_revenue() -> None:
    leads = [
        lead(1, first_source="google", last_source="email", won_at=at(5), revenue=100.0),
        lead(2, first_source="google", last_source="email"),
        lead(3, first_source="linkedin", last_source="linkedin", won_at=at(5), revenue=900.0),
        lead(4),
    ]
    first = funnel(leads, "source", "first").breakdown
    assert [(r.key, r.leads, r.won, r.revenue) for r in first] == [
        ("linkedin", 1, 1, 900.0),
        ("google", 2, 1, 100.0),
        ("(none)", 1, 0, 0.0),
    ]
    last = funnel(leads, "source", "last").breakdown
    assert [(r.key, r.leads) for r in last] == [("linkedin", 1), ("email", 2), ("(none)", 1)]


def test_speed_to_lead_median_p90_and_buckets() -> None:
    leads = [
        sales_ready(1, 120, rep_id="ana"),  # 2 min: < 5 min
        sales_ready(2, 299, rep_id="ana"),  # < 5 min
        sales_ready(3, 300, rep_id="ana"),  # exactly 5 min: < 1 h
        sales_ready(4, 1800, rep_id="ben"),  # < 1 h
        sales_ready(5, 7200, rep_id="ben"),  # 2 h: < 24 h
        sales_ready(6, 90000, rep_id="ben"),  # 25 h: > 24 h
        sales_ready(7, None, rep_id="ben"),  # never
        sales_ready(8, None),  # never, queued (no rep)
        lead(9, contacted_at=at(10)),  # not sales-ready: outside speed to lead
    ]
    report = speed(leads)
    assert (report.leads, report.contacted) == (8, 6)
    # Sorted: 120, 299, 300, 1800, 7200, 90000 → median (300 + 1800) / 2 = 1050;
    # p90 at position 4.5 → 7200 + 0.5 * (90000 - 7200) = 48600.
    assert (report.median_s, report.p90_s) == (1050.0, 48600.0)
    assert [(b.bucket, b.leads, b.share) for b in report.buckets] == [
        ("lt_5m", 2, 0.25),
        ("lt_1h", 2, 0.25),
        ("lt_24h", 1, 0.125),
        ("gte_24h", 1, 0.125),
        ("never", 2, 0.25),
    ]
    # Hand-off at 60 s: days to contact = (contact - 60) / 86400 for the six contacted.
    days = sorted((s - 60) / 86400 for s in (120, 299, 300, 1800, 7200, 90000))
    assert report.handed_off == 8
    assert report.handoff_contacted == 6
    assert report.handoff_median_days == round((days[2] + days[3]) / 2, 4)
    assert report.handoff_mean_days == round(sum(days) / 6, 4)
    ana, ben = report.by_rep
    assert (ana.rep, ana.leads, ana.contacted, ana.median_s, ana.within_5m, ana.never) == (
        "ana",
        3,
        3,
        299.0,
        0.6667,
        0,
    )
    assert (ben.rep, ben.leads, ben.contacted, ben.median_s, ben.never) == ("ben", 4, 3, 7200.0, 1)


def test_speed_counts_from_the_qualifying_touch_and_never_below_zero() -> None:
    requalified = lead(1, mql_at=at(3601), ready_at=at(3600), contacted_at=at(3900))
    assert response_seconds(requalified) == 300.0
    called_as_nurture = lead(2, mql_at=at(3601), ready_at=at(3600), contacted_at=at(10))
    assert response_seconds(called_as_nurture) == 0.0
    assert response_seconds(lead(3, mql_at=at(1))) is None


def test_empty_reports_have_no_ratios() -> None:
    report = speed([])
    assert (report.leads, report.median_s, report.handoff_mean_days) == (0, None, None)
    assert all(b.share is None for b in report.buckets)
    assert funnel([], "rep", "first").mql_to_sql is None


def test_rejection_reasons_are_ranked_case_and_spacing_ignored() -> None:
    leads = [
        lead(1, accepted_at=at(1)),
        lead(2, rejected_at=at(1), rejection_reason="No budget"),
        lead(3, rejected_at=at(1), rejection_reason="no  budget"),
        lead(4, rejected_at=at(1), rejection_reason="competitor"),
        lead(5, rejected_at=at(1), rejection_reason="Student"),
        lead(6, rejected_at=at(1), rejection_reason="student"),
        lead(7, rejected_at=at(1), rejection_reason="Not a decision maker"),
        lead(8, lost_at=at(9), lost_reason="price"),
        lead(9, lost_at=at(9), won_at=at(10), lost_reason="price"),  # won after all
    ]
    report = reasons(leads)
    assert (report.screened, report.rejected, report.rejection_rate) == (7, 6, 0.8571)
    assert [(r.reason, r.leads, r.share) for r in report.reasons] == [
        ("no budget", 2, 0.3333),
        ("student", 2, 0.3333),
        ("competitor", 1, 0.1667),
        ("not a decision maker", 1, 0.1667),
    ]
    assert report.lost == 1
    assert [(r.reason, r.leads) for r in report.lost_reasons] == [("price", 1)]


@pytest.mark.parametrize(("numerator", "denominator"), QUANTILES)
def test_the_ranks_the_database_picks_are_the_ones_a_quantile_reads(
    numerator: int, denominator: int
) -> None:
    """SQL picks a quantile's ranks in integer arithmetic; the arithmetic reads them as
    floor((n - 1) * q) with q a float: they must agree for every sample size."""
    q = numerator / denominator
    for size in range(1, 200_001):
        low, high = quantile_ranks(size, q)
        assert low == (size - 1) * numerator // denominator
        assert high == min(low + 1, size - 1)


def test_a_sample_known_at_two_ranks_gives_the_quantile_of_every_value() -> None:
    values = [4.0, 1.0, 9.5, 2.0, 2.0, 7.25, 3.0]
    whole = Sample.of(values)
    for q in (0.5, 0.9):
        low, high = quantile_ranks(len(values), q)
        partial = Sample(len(values), {low: whole.at[low], high: whole.at[high]})
        assert partial.quantile(q) == whole.quantile(q) == quantile(values, q)
    assert Sample(0, {}).quantile(0.5) is None
