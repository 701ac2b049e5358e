"""Scoring arithmetic: profile merging, fit and engagement points, and the resulting tier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow.conditions import Condition
from leadflow.config import Scoring, ScoringRule
from leadflow.events import Company, Lead, ScoreReason
from leadflow_scoring.domain import Score, Touch, merge_fields, score

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def rule(name: str, group: Any, points: int, **condition: Any) -> ScoringRule:
    """A scoring rule with one condition."""
    return ScoringRule(
        name=name, group=group, points=points, when=[Condition.model_validate(condition)]
    )


MODEL = Scoring(
    version="test-1",
    mql_threshold=60,
    watch_threshold=30,
    hand_raise_activities=["demo_request", "contact_sales"],
    rules=[
        rule("senior-title", "fit", 25, field="lead.job_title", regex=r"(?i)\b(vp|director)\b"),
        rule("large-company", "fit", 20, field="lead.company.size", gte=500),
        rule("target-industry", "fit", 10, field="lead.company.industry", **{"in": ["software"]}),
        rule("pricing-page", "engagement", 15, field="activity", equals="pricing_page"),
        rule("webinar", "engagement", 10, field="activity", equals="webinar"),
        rule("demo-request", "engagement", 40, field="activity", equals="demo_request"),
        rule("long-call", "engagement", 20, field="call_duration_s", gte=120),
        rule("spring-campaign", "engagement", 5, field="campaign", equals="spring-26"),
    ],
)

SENIOR_AT_LARGE = {"job_title": "VP Engineering", "company": {"size": 800}}


def touch(activity: str, source: str = "web", minutes: int = 0, **detail: Any) -> Touch:
    """A touch `minutes` after T0."""
    return Touch(
        activity=activity, source=source, occurred_at=T0 + timedelta(minutes=minutes), detail=detail
    )


def fit(rule_name: str, points: int) -> ScoreReason:
    """The reason a fit rule leaves."""
    return ScoreReason(rule=rule_name, group="fit", points=points)


def engaged(rule_name: str, points: int, detail: str) -> ScoreReason:
    """The reason an engagement rule leaves."""
    return ScoreReason(rule=rule_name, group="engagement", points=points, detail=detail)


def qualification(rule_name: str, detail: str) -> ScoreReason:
    """The reason behind the tier."""
    return ScoreReason(rule=rule_name, group="qualification", points=0, detail=detail)


def test_merge_into_an_empty_profile() -> None:
    lead = Lead(email="ana@example.com", company=Company(name="Acme"), utm={"source": "ads"})

    assert merge_fields({}, lead) == {
        "email": "ana@example.com",
        "company": {"name": "Acme"},
        "utm": {"source": "ads"},
        "answers": {},
        "custom": {},
    }


@pytest.mark.parametrize(
    ("current", "update", "expected"),
    [
        pytest.param(
            {"job_title": "Manager"}, Lead(job_title="VP Sales"), "VP Sales", id="latest-wins"
        ),
        pytest.param({"job_title": "VP Sales"}, Lead(), "VP Sales", id="none-keeps"),
        pytest.param({"job_title": "VP Sales"}, Lead(job_title=""), "VP Sales", id="empty-keeps"),
        pytest.param({}, Lead(job_title="CTO"), "CTO", id="new-field"),
    ],
)
def test_merge_latest_non_empty_value_wins(
    current: dict[str, Any], update: Lead, expected: str
) -> None:
    assert merge_fields(current, update)["job_title"] == expected


@pytest.mark.parametrize(
    ("current", "update", "expected"),
    [
        (True, Lead(consent=False), False),
        (False, Lead(), False),
        (None, Lead(consent=True), True),
    ],
)
def test_merge_keeps_explicit_false(current: bool | None, update: Lead, expected: bool) -> None:
    fields: dict[str, Any] = {} if current is None else {"consent": current}

    assert merge_fields(fields, update)["consent"] is expected


def test_merge_nested_fields_key_by_key() -> None:
    current = {
        "company": {"name": "Acme", "size": 50},
        "utm": {"source": "ads", "campaign": "spring"},
        "custom": {"crm_id": 7},
    }
    update = Lead(company=Company(size=500, industry="software"), utm={"source": "newsletter"})

    merged = merge_fields(current, update)

    assert merged["company"] == {"name": "Acme", "size": 500, "industry": "software"}
    assert merged["utm"] == {"source": "newsletter", "campaign": "spring"}
    assert merged["custom"] == {"crm_id": 7}


def test_merge_does_not_change_the_current_profile() -> None:
    current: dict[str, Any] = {"job_title": "Manager", "company": {"name": "Acme"}}

    merge_fields(current, Lead(job_title="VP", company=Company(size=10)))

    assert current == {"job_title": "Manager", "company": {"name": "Acme"}}


def test_fit_rules_look_at_the_profile() -> None:
    result = score(MODEL, {**SENIOR_AT_LARGE, "company": {"size": 800, "industry": "Software"}}, [])

    assert (result.fit, result.engagement, result.total) == (55, 0, 55)
    assert result.reasons == [
        fit("senior-title", 25),
        fit("large-company", 20),
        fit("target-industry", 10),
        qualification("watch-list", "55 >= 30"),
    ]


@pytest.mark.parametrize(
    ("fields", "points"),
    [
        ({"job_title": "Director of IT"}, 25),
        ({"job_title": "Senior Developer"}, 0),
        ({"company": {"size": 499}}, 0),
        ({"company": {"size": 500}}, 20),
        ({"company": {"industry": "SOFTWARE"}}, 10),
        ({}, 0),
    ],
)
def test_fit_points(fields: dict[str, Any], points: int) -> None:
    assert score(MODEL, fields, []).fit == points


def test_engagement_counts_every_touch() -> None:
    touches = [
        touch("pricing_page"),
        touch("webinar", source="events", minutes=5),
        touch("pricing_page", minutes=10),
        touch("form_fill", minutes=15),
    ]

    result = score(MODEL, {}, touches)

    assert (result.fit, result.engagement) == (0, 40)
    assert result.reasons == [
        engaged("pricing-page", 15, "pricing_page via web"),
        engaged("webinar", 10, "webinar via events"),
        engaged("pricing-page", 15, "pricing_page via web"),
        qualification("watch-list", "40 >= 30"),
    ]


def test_engagement_rules_see_the_touch_detail() -> None:
    touches = [
        touch("call", source="phone", call_duration_s=300, campaign="spring-26"),
        touch("call", source="phone", call_duration_s=60),
    ]

    result = score(MODEL, {}, touches)

    assert result.engagement == 25
    assert result.reasons == [
        engaged("long-call", 20, "call via phone"),
        engaged("spring-campaign", 5, "call via phone"),
    ]


def test_fit_rules_do_not_score_touches() -> None:
    activity_as_fit = Scoring(
        version="x",
        mql_threshold=100,
        rules=[rule("fit-on-activity", "fit", 50, field="activity", equals="webinar")],
    )

    result = score(activity_as_fit, {}, [touch("webinar")])

    assert (result.fit, result.engagement, result.reasons) == (0, 0, [])


@pytest.mark.parametrize(
    ("touches", "total", "tier", "last_reason"),
    [
        pytest.param(
            [touch("pricing_page")], 60, "mql", qualification("threshold", "60 >= 60"), id="at"
        ),
        pytest.param(
            [touch("webinar")], 55, "watch", qualification("watch-list", "55 >= 30"), id="below"
        ),
        pytest.param(
            [touch("pricing_page"), touch("webinar")],
            70,
            "mql",
            qualification("threshold", "70 >= 60"),
            id="above",
        ),
    ],
)
def test_mql_threshold(
    touches: list[Touch], total: int, tier: str, last_reason: ScoreReason
) -> None:
    result = score(MODEL, SENIOR_AT_LARGE, touches)

    assert (result.total, result.tier, result.qualified) == (total, tier, tier == "mql")
    assert result.reasons[-1] == last_reason


@pytest.mark.parametrize("activity", ["demo_request", "contact_sales"])
def test_hand_raise_qualifies_below_the_threshold(activity: str) -> None:
    result = score(MODEL, {}, [touch("webinar"), touch(activity, minutes=1)])

    assert result.total < MODEL.mql_threshold
    assert (result.tier, result.qualified) == ("mql", True)
    assert result.reasons[-1] == qualification("hand-raise", f"{activity} is a hand-raise")


def test_hand_raise_is_not_needed_above_the_threshold() -> None:
    result = score(MODEL, SENIOR_AT_LARGE, [touch("demo_request")])

    assert result.total == 85
    assert result.reasons[-1] == qualification("threshold", "85 >= 60")
    assert [r.rule for r in result.reasons if r.group == "qualification"] == ["threshold"]


@pytest.mark.parametrize(
    ("fields", "touches", "tier"),
    [
        pytest.param({"company": {"size": 500}}, [touch("pricing_page")], "watch", id="35-points"),
        pytest.param({"company": {"size": 500}}, [touch("webinar")], "watch", id="30-points"),
        pytest.param({"company": {"size": 500}}, [], "nurture", id="20-fit-points"),
        pytest.param(
            {"company": {"industry": "software"}},
            [touch("webinar")],
            "nurture",
            id="20-mixed-points",
        ),
        pytest.param({}, [], "nurture", id="0-points"),
    ],
)
def test_watch_list_and_nurture(fields: dict[str, Any], touches: list[Touch], tier: str) -> None:
    result = score(MODEL, fields, touches)

    assert result.tier == tier
    assert result.qualified is False


def test_nurture_has_no_qualification_reason() -> None:
    result = score(MODEL, {"company": {"size": 500}}, [])

    assert result.reasons == [fit("large-company", 20)]


def test_without_watch_threshold_below_mql_is_nurture() -> None:
    no_watch = MODEL.model_copy(update={"watch_threshold": None})

    result = score(no_watch, SENIOR_AT_LARGE, [])

    assert (result.total, result.tier) == (45, "nurture")
    assert result.reasons == [fit("senior-title", 25), fit("large-company", 20)]


def test_score_total_and_qualified() -> None:
    assert Score(fit=20, engagement=15, tier="watch", reasons=[]).total == 35
    assert Score(fit=0, engagement=0, tier="mql", reasons=[]).qualified is True
    assert Score(fit=90, engagement=0, tier="watch", reasons=[]).qualified is False
