"""Tier shares against targets: which tier a lead counts in, periods, groups and drift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from leadflow.config import Reporting
from leadflow_sla.reporting.lifecycle import Lifecycle
from leadflow_sla.reporting.query import ReportQuery
from leadflow_sla.reporting.render import document, render
from leadflow_sla.reporting.tiers import TierShare, period_of, tier_of, tiers

MONDAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TARGETS = Reporting(tier_targets={"mql": 0.05, "watch": 0.10}, tier_min_leads=20)


def lead(n: int, tier: str | None, *, at: datetime = MONDAY, source: str = "web") -> Lifecycle:
    return Lifecycle(
        f"lk_{n}",
        first_touch_at=at,
        first_source=source,
        last_source="email",
        first_campaign=None,
        tier=None if tier == "mql" else tier,
        mql_at=at if tier == "mql" else None,
    )


def mix(mql: int, watch: int, nurture: int, start: int = 0, source: str = "web") -> list[Lifecycle]:
    tiers_ = ["mql"] * mql + ["watch"] * watch + ["nurture"] * nurture
    return [lead(start + i, t, source=source) for i, t in enumerate(tiers_)]


def test_a_lead_counts_as_mql_once_it_qualified_else_in_its_latest_tier() -> None:
    assert tier_of(Lifecycle("a", tier="watch", mql_at=MONDAY)) == "mql"
    assert tier_of(Lifecycle("a", tier="watch")) == "watch"
    assert tier_of(Lifecycle("a")) == "unscored"


@pytest.mark.parametrize(
    ("period", "expected"),
    [("day", "2027-01-03"), ("week", "2026-W53"), ("month", "2027-01")],
)
def test_periods_are_utc_days_iso_weeks_and_months(period: str, expected: str) -> None:
    # Sunday 3 January 2027 still belongs to ISO week 53 of 2026.
    at = datetime(2027, 1, 3, 0, 30, tzinfo=UTC)
    assert period_of(at, period) == expected  # type: ignore[arg-type]


def test_shares_on_target_above_below_and_with_too_few_leads() -> None:
    leads = [
        *mix(2, 4, 34),  # 40 web leads: 5 % mql, 10 % watch
        *mix(5, 0, 15, start=100, source="partner"),  # 20: 25 % mql, no watch at all
        *mix(3, 0, 2, start=200, source="ads"),  # 5: too few to flag
    ]

    report = tiers(leads, TARGETS, period="week", by="source")

    assert (report.leads, report.flagged) == (65, 2)
    assert [r for r in report.rows if r.key == "partner"] == [
        TierShare("2026-W45", "partner", "mql", 5, 20, 0.25, 0.05, 0.2, "above"),
        TierShare("2026-W45", "partner", "watch", 0, 20, 0.0, 0.1, -0.1, "below"),
        TierShare("2026-W45", "partner", "nurture", 15, 20, 0.75, None, None, "no target"),
    ]
    web = {r.tier: r.status for r in report.rows if r.key == "web"}
    assert web == {"mql": "on target", "watch": "on target", "nurture": "no target"}
    ads = {r.tier: r.status for r in report.rows if r.key == "ads"}
    assert ads == {"mql": "too few leads", "watch": "too few leads", "nurture": "no target"}
    overall = {r.tier: (r.leads, r.share, r.status) for r in report.overall}
    assert overall == {
        "mql": (10, 0.1538, "above"),
        "watch": (4, 0.0615, "below"),
        "nurture": (51, 0.7846, "no target"),
    }


def test_the_tolerance_is_in_share_points_and_inclusive() -> None:
    leads = mix(7, 2, 91)  # mql 7 % (2 points above 5 %), watch 2 % (8 below 10 %)
    lenient = Reporting(tier_targets={"mql": 0.05, "watch": 0.10}, tier_tolerance=0.08)

    assert {r.tier: r.status for r in tiers(leads, TARGETS).rows} == {
        "mql": "on target",
        "watch": "below",
        "nurture": "no target",
    }
    assert {r.tier: r.status for r in tiers(leads, lenient).rows}["watch"] == "on target"


def test_periods_campaigns_and_the_last_touch_group_apart() -> None:
    later = MONDAY + timedelta(days=8)
    leads = [lead(1, "mql"), lead(2, "watch", at=later), lead(3, None, at=later)]

    by_day = tiers(leads, Reporting(), period="day", by="campaign")
    assert [(r.period, r.key, r.tier, r.leads, r.total) for r in by_day.rows] == [
        ("2026-11-02", "(none)", "mql", 1, 1),
        ("2026-11-10", "(none)", "watch", 1, 2),
        ("2026-11-10", "(none)", "unscored", 1, 2),
    ]
    by_last = tiers(leads, Reporting(), period="month", by="source", touch="last")
    assert {r.key for r in by_last.rows} == {"email"}
    assert tiers([], TARGETS).rows == []


def test_targets_refuse_unknown_tiers_and_more_than_every_lead() -> None:
    with pytest.raises(ValidationError, match="tier_targets names tiers that do not exist: 'hot'"):
        Reporting(tier_targets={"hot": 0.1})
    with pytest.raises(ValidationError, match="add up to more than 1"):
        Reporting(tier_targets={"mql": 0.6, "watch": 0.5})
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Reporting(tier_targets={"mql": 1.5})


def test_the_table_shows_shares_targets_and_flags() -> None:
    report = tiers(mix(5, 0, 15, source="partner"), TARGETS, by="source")
    doc = document("tiers", ReportQuery(), report, MONDAY)
    shown = render("tiers", doc, "table")

    assert "Tier shares by week and source" in shown
    assert "tier shares off target" in shown
    line = next(x for x in shown.splitlines() if "partner" in x and "mql" in x)
    assert line.split() == [
        "2026-W45",
        "partner",
        "mql",
        "5",
        "20",
        "25.0%",
        "5.0%",
        "20.0%",
        "above",
    ]
    csv = render("tiers", doc, "csv", "rows")
    assert csv.startswith("period,key,tier,")
    assert "2026-W45,partner,watch,0,20,0.0,0.1,-0.1,below" in csv
