"""Scoring arithmetic: fit, decayed and capped engagement, grades, tiers and their reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow.conditions import Condition
from leadflow.config import Scoring, ScoringRule
from leadflow.events import Company, Lead
from leadflow.scoring_model import CampaignOverride, Domains, HandRaise
from leadflow_scoring.domain import Score, Touch, decay_factor, describe, merge_fields, score

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def rule(
    name: str, group: Any, points: int, *conditions: dict[str, Any], **extra: Any
) -> ScoringRule:
    """A scoring rule with some conditions."""
    return ScoringRule.model_validate(
        {"name": name, "group": group, "points": points, "when": list(conditions), **extra}
    )


def on(activity: str) -> dict[str, Any]:
    """The condition `activity == ...`."""
    return {"field": "activity", "equals": activity}


MODEL = Scoring(
    version="test-1",
    mql_threshold=60,
    watch_threshold=30,
    hand_raise_activities=["demo_request"],
    rules=[
        rule(
            "senior-title",
            "fit",
            25,
            {"field": "lead.job_title", "regex": r"(?i)\b(vp|director)\b"},
        ),
        rule("large-company", "fit", 20, {"field": "lead.company.size", "gte": 500}),
        rule("target-industry", "fit", 10, {"field": "lead.company.industry", "in": ["software"]}),
        rule("pricing-page", "engagement", 15, on("pricing_page")),
        rule("webinar", "engagement", 10, on("webinar")),
        rule("demo-request", "engagement", 40, on("demo_request")),
        rule("long-call", "engagement", 20, {"field": "call_duration_s", "gte": 120}),
    ],
)

SENIOR_AT_LARGE = {"job_title": "VP Engineering", "company": {"size": 800}}


def touch(activity: str, at: datetime = T0, source: str = "web", **detail: Any) -> Touch:
    """A touch at `at` (T0 by default)."""
    return Touch(
        activity=activity,
        source=source,
        occurred_at=at,
        detail=detail,
        event_id=f"{activity}-{at.isoformat()}",
    )


def points_of(result: Score) -> dict[str, int]:
    """Each reason's points by rule (qualification reasons left out)."""
    return {r.rule: r.points for r in result.reasons if r.group != "qualification"}


# --- profile merge -------------------------------------------------------------------


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


def test_merge_keeps_a_purchased_list_mark_when_a_later_event_says_nothing() -> None:
    assert merge_fields({"list_source": "purchased_list"}, Lead(job_title="CTO"))[
        "list_source"
    ] == ("purchased_list")


def test_merge_nested_fields_key_by_key() -> None:
    current = {
        "company": {"name": "Acme", "size": 50},
        "utm": {"source": "ads", "campaign": "spring"},
    }
    update = Lead(company=Company(size=500, industry="software"), utm={"source": "newsletter"})

    merged = merge_fields(current, update)

    assert merged["company"] == {"name": "Acme", "size": 500, "industry": "software"}
    assert merged["utm"] == {"source": "newsletter", "campaign": "spring"}


# --- fit -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "points"),
    [
        ({"job_title": "Director of IT"}, 25),
        ({"job_title": "Senior Developer"}, 0),
        ({"company": {"size": 499}}, 0),
        ({"company": {"size": 500}}, 20),
        ({"company": {"industry": "SOFTWARE"}}, 10),
        ({**SENIOR_AT_LARGE, "company": {"size": 800, "industry": "software"}}, 55),
        ({}, 0),
    ],
)
def test_fit_points(fields: dict[str, Any], points: int) -> None:
    assert score(MODEL, fields, [], T0).fit == points


def test_fit_reasons_say_what_matched_and_never_decay() -> None:
    result = score(MODEL, SENIOR_AT_LARGE, [], T0 + 400 * DAY)

    [senior, large] = [r for r in result.reasons if r.group == "fit"]
    assert (senior.rule, senior.points, senior.base_points, senior.decay) == (
        "senior-title",
        25,
        25,
        1.0,
    )
    assert large.detail == "lead.company.size >= 500; fit never decays"


def test_fit_rules_do_not_score_touches() -> None:
    activity_as_fit = Scoring(
        version="x", mql_threshold=100, rules=[rule("fit-on-activity", "fit", 50, on("webinar"))]
    )

    assert score(activity_as_fit, {}, [touch("webinar")], T0).fit == 0


@pytest.mark.parametrize(
    ("fields", "fact", "value"),
    [
        ({"email": "a@gmail.com"}, "email_type", "personal"),
        ({"email": "a@mailinator.com"}, "email_type", "disposable"),
        ({"email": "a@acme.example"}, "email_type", "business"),
        ({}, "email_type", "none"),
        ({"email": "a@eu.rival.example"}, "competitor", True),
        ({"company": {"domain": "https://www.rival.example/about"}}, "competitor", True),
        ({"email": "a@gmail.com", "company": {"domain": "other.example"}}, "competitor", False),
        ({"email": "a@bank.example"}, "priority_account", True),
        ({"email": "a@client.example"}, "customer", True),
        ({"phone": "+14155550123"}, "phone_valid", True),
        ({"phone": "+1415555"}, "phone_valid", False),
        ({"phone": "+18005550123"}, "phone_type", "toll_free"),
    ],
)
def test_facts_rules_can_test(fields: dict[str, Any], fact: str, value: Any) -> None:
    model = Scoring(
        version="x",
        mql_threshold=100,
        domains=Domains(
            competitors=["rival.example"],
            priority_accounts=["bank.example"],
            customers=["client.example"],
        ),
        rules=[rule("fact", "fit", 7, {"field": f"facts.{fact}", "equals": value})],
    )

    assert score(model, fields, [], T0).fit == 7


# --- engagement, decay, caps ----------------------------------------------------------


def test_engagement_counts_every_touch() -> None:
    touches = [
        touch("pricing_page"),
        touch("webinar", T0 + timedelta(minutes=5), "events"),
        touch("form_fill"),
    ]

    result = score(MODEL, {}, touches, T0 + timedelta(minutes=5))

    assert (result.fit, result.engagement) == (0, 25)
    assert [(r.rule, r.detail) for r in result.reasons if r.group == "engagement"] == [
        ("pricing-page", "pricing_page via web, 5m ago; no decay"),
        ("webinar", "webinar via events, just now; no decay"),
    ]


def test_engagement_rules_see_the_touch_detail() -> None:
    result = score(
        MODEL, {}, [touch("call", call_duration_s=300), touch("call", call_duration_s=60)], T0
    )

    assert result.engagement == 20


@pytest.mark.parametrize(
    ("age", "points", "kept"),
    [
        pytest.param(timedelta(0), 40, 1.0, id="new"),
        pytest.param(14 * DAY, 20, 0.5, id="one-half-life"),
        pytest.param(28 * DAY, 10, 0.25, id="two-half-lives"),
        pytest.param(7 * DAY, 28, 0.707107, id="half-a-half-life"),
        pytest.param(-DAY, 40, 1.0, id="future-touch-counts-as-new"),
    ],
)
def test_engagement_decays_with_its_half_life(age: timedelta, points: int, kept: float) -> None:
    model = MODEL.model_copy(update={"engagement_half_life": 14 * DAY})

    result = score(model, {}, [touch("demo_request")], T0 + age)

    [reason] = [r for r in result.reasons if r.rule == "demo-request"]
    assert (reason.points, reason.base_points, reason.decay) == (points, 40, kept)
    assert reason.half_life_s == 14 * 86400
    assert reason.occurred_at == T0
    assert "half-life 14d keeps" in reason.detail


def test_a_rule_can_have_its_own_half_life_or_none() -> None:
    model = Scoring(
        version="x",
        mql_threshold=100,
        engagement_half_life=10 * DAY,
        rules=[
            rule("fast", "engagement", 40, on("pricing_page"), half_life="1d"),
            rule("steady", "engagement", 40, on("pricing_page"), decays=False),
            rule("default", "engagement", 40, on("pricing_page")),
        ],
    )

    result = score(model, {}, [touch("pricing_page")], T0 + 10 * DAY)

    assert points_of(result) == {"fast": 0, "steady": 40, "default": 20}


def test_penalties_never_decay() -> None:
    model = Scoring(
        version="x",
        mql_threshold=100,
        engagement_half_life=DAY,
        rules=[rule("spam", "engagement", -30, on("spam_report"))],
    )

    assert score(model, {}, [touch("spam_report")], T0 + 90 * DAY).engagement == -30


def test_decay_factor() -> None:
    assert decay_factor(0, 10) == 1.0
    assert decay_factor(10, 10) == 0.5
    assert decay_factor(-5, 10) == 1.0


def test_caps_bound_a_rule_a_category_and_a_group_and_say_so() -> None:
    model = Scoring(
        version="x",
        mql_threshold=1000,
        caps={"content": 25, "engagement": 30},
        rules=[
            rule("click", "engagement", 3, on("email_click"), max_points=6),
            rule("ebook", "engagement", 10, on("download"), category="content"),
            rule("webinar", "engagement", 10, on("webinar"), category="content"),
        ],
    )
    touches = [touch("email_click")] * 3 + [touch("download")] * 2 + [touch("webinar")] * 2

    result = score(model, {}, touches, T0)

    caps = {r.rule: (r.points, r.base_points) for r in result.reasons if r.rule.startswith("cap:")}
    assert caps == {"cap:click": (-3, 9), "cap:content": (-15, 40), "cap:engagement": (-1, 31)}
    assert result.engagement == 30
    assert sum(r.points for r in result.reasons if r.group == "engagement") == 30


def test_negative_points_are_not_capped_away() -> None:
    model = Scoring(
        version="x",
        mql_threshold=1000,
        caps={"engagement": 10},
        rules=[
            rule("visit", "engagement", 10, on("visit")),
            rule("bounce", "engagement", -5, on("bounce")),
        ],
    )

    assert score(model, {}, [touch("visit"), touch("visit"), touch("bounce")], T0).engagement == 5


def test_repeat_visits_are_counted_per_activity() -> None:
    model = Scoring(
        version="x",
        mql_threshold=1000,
        rules=[rule("repeat", "engagement", 5, on("visit"), {"field": "nth", "gte": 2})],
    )
    touches = [touch("visit", T0 + i * DAY) for i in range(4)] + [touch("webinar")]

    assert score(model, {}, touches, T0 + 4 * DAY).engagement == 15


# --- grades --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "touches", "grade"),
    [
        pytest.param(
            {**SENIOR_AT_LARGE, "company": {"size": 900, "industry": "software"}},
            ["demo_request", "pricing_page"],
            "A1",
            id="A1",
        ),
        pytest.param(SENIOR_AT_LARGE, ["webinar"], "B3", id="B3"),
        pytest.param({"job_title": "VP"}, ["pricing_page", "webinar"], "C2", id="C2"),
        pytest.param({}, [], "D4", id="D4"),
    ],
)
def test_grade_matrix(fields: dict[str, Any], touches: list[str], grade: str) -> None:
    result = score(MODEL, fields, [touch(a) for a in touches], T0)

    assert result.grade == grade
    assert (result.fit_grade, result.engagement_grade) == (grade[0], grade[1])


# --- tiers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("touches", "tier", "qualified_by", "why"),
    [
        pytest.param(
            ["pricing_page"],
            "mql",
            "threshold",
            "score 60 reaches the MQL threshold 60",
            id="at-bar",
        ),
        pytest.param(
            ["webinar"],
            "watch",
            None,
            "score 55 reaches the watch threshold 30, below the MQL threshold 60",
            id="watch",
        ),
        pytest.param(
            ["pricing_page", "webinar"],
            "mql",
            "threshold",
            "score 70 reaches the MQL threshold 60",
            id="above",
        ),
    ],
)
def test_thresholds(touches: list[str], tier: str, qualified_by: str | None, why: str) -> None:
    result = score(MODEL, SENIOR_AT_LARGE, [touch(a) for a in touches], T0)

    assert (result.tier, result.qualified_by, result.qualified) == (
        tier,
        qualified_by,
        tier == "mql",
    )
    assert (result.reasons[-1].rule, result.reasons[-1].detail) == (
        "threshold" if tier == "mql" else "watch-list",
        why,
    )


def test_nurture_says_which_bar_it_is_under() -> None:
    result = score(MODEL, {"company": {"size": 500}}, [], T0)

    assert result.tier == "nurture"
    assert result.reasons[-1].detail == "score 20 is below the watch threshold 30"


def test_a_hand_raise_qualifies_below_the_bar() -> None:
    result = score(MODEL.model_copy(update={"rules": []}), {}, [touch("demo_request")], T0)

    assert (result.total, result.tier, result.qualified_by) == (0, "mql", "hand-raise")
    assert result.reasons[-1].detail == "demo_request is a hand-raise"


BANT = HandRaise.model_validate(
    {
        "name": "ivr-bant",
        "when": [
            {"field": "activity", "equals": "inbound_call"},
            {"field": "answers.budget", "equals": "yes"},
            {"field": "answers.authority", "equals": "yes"},
            {"field": "answers.timeframe", "in": ["this_quarter"]},
        ],
    }
)


@pytest.mark.parametrize(
    ("answers", "tier"),
    [
        ({"budget": "yes", "authority": "yes", "timeframe": "this_quarter"}, "mql"),
        ({"budget": "yes", "authority": "no", "timeframe": "this_quarter"}, "nurture"),
        ({"budget": "yes", "authority": "yes"}, "nurture"),
    ],
)
def test_an_ivr_caller_meeting_bant_is_a_hand_raise(answers: dict[str, str], tier: str) -> None:
    model = MODEL.model_copy(update={"hand_raises": [BANT]})

    result = score(model, {}, [touch("inbound_call", answers=answers)], T0)

    assert result.tier == tier
    if tier == "mql":
        assert result.reasons[-1].detail == "inbound_call meets hand-raise ivr-bant"


def test_grade_cells_can_qualify_by_themselves() -> None:
    model = MODEL.model_copy(
        update={"mql_threshold": 200, "watch_threshold": 10, "mql_grades": ["B3"]}
    )

    result = score(model, SENIOR_AT_LARGE, [touch("webinar")], T0)

    assert (result.grade, result.tier, result.qualified_by) == ("B3", "mql", "grade")


@pytest.mark.parametrize(
    ("touches", "tier", "held"),
    [
        pytest.param([], "watch", True, id="fit-alone-is-held"),
        pytest.param(["webinar"], "watch", True, id="too-little-engagement"),
        pytest.param(["pricing_page"], "mql", False, id="enough-engagement"),
        pytest.param(["demo_request"], "mql", False, id="hand-raise"),
    ],
)
def test_purchased_records_never_qualify_on_fit_alone(
    touches: list[str], tier: str, held: bool
) -> None:
    model = MODEL.model_copy(update={"purchased_list_min_engagement": 15, "mql_threshold": 55})
    fields = {
        **SENIOR_AT_LARGE,
        "company": {"size": 900, "industry": "software"},
        "list_source": "purchased_list",
    }

    result = score(model, fields, [touch(a) for a in touches], T0)

    assert result.tier == tier
    assert ("purchased-list" in [r.rule for r in result.reasons]) is held


def test_the_same_record_inbound_qualifies_on_fit() -> None:
    fields = {**SENIOR_AT_LARGE, "company": {"size": 900, "industry": "software"}}

    assert score(MODEL.model_copy(update={"mql_threshold": 55}), fields, [], T0).tier == "mql"


def test_campaign_overrides_apply_to_the_profile_campaign() -> None:
    model = MODEL.model_copy(update={"campaigns": {"partner": CampaignOverride(mql_threshold=50)}})

    inside = score(model, {**SENIOR_AT_LARGE, "campaign": "partner"}, [touch("webinar")], T0)
    outside = score(model, {**SENIOR_AT_LARGE, "campaign": "other"}, [touch("webinar")], T0)

    assert (inside.tier, outside.tier) == ("mql", "watch")
    assert inside.reasons[-1].detail == "score 55 reaches the MQL threshold 50 (campaign partner)"


def test_disqualifying_rules_win_over_everything_and_give_reasons() -> None:
    model = MODEL.model_copy(
        update={
            "domains": Domains(competitors=["rival.example"]),
            "rules": [
                *MODEL.rules,
                rule(
                    "competitor",
                    "fit",
                    0,
                    {"field": "facts.competitor", "equals": True},
                    disqualify=True,
                ),
                rule(
                    "student",
                    "fit",
                    -30,
                    {"field": "lead.job_title", "regex": "(?i)student"},
                    disqualify=True,
                ),
            ],
        }
    )
    fields = {"email": "x@rival.example", "job_title": "VP and student", "company": {"size": 900}}

    result = score(model, fields, [touch("demo_request")], T0)

    assert (result.tier, result.qualified, result.qualified_by) == ("disqualified", False, None)
    assert result.disqualified_by == ["competitor", "student"]
    assert result.reasons[-1].detail == "disqualified by competitor, student"
    assert [r.rule for r in result.reasons if r.disqualifies] == ["competitor", "student"]


def test_reasons_add_up_to_the_score() -> None:
    model = MODEL.model_copy(update={"engagement_half_life": 7 * DAY, "caps": {"engagement": 50}})
    touches = [
        touch("demo_request", T0 - 3 * DAY),
        touch("pricing_page", T0 - DAY),
        touch("webinar"),
    ]

    result = score(model, SENIOR_AT_LARGE, touches, T0)

    assert sum(r.points for r in result.reasons) == result.total


def test_describe_renders_conditions() -> None:
    assert (
        describe(
            rule(
                "r",
                "fit",
                1,
                {"field": "a", "in": ["x", "y"]},
                {"field": "b", "gte": 2, "lt": 5},
                {"field": "c", "exists": False},
                {"field": "d", "prefix": "V"},
                {"field": "e", "not_equals": "z"},
            )
        )
        == "a in x, y and b >= 2 and b < 5 and c is empty and d starts with V and e is not z"
    )


def test_condition_model_is_reused() -> None:
    assert isinstance(MODEL.rules[0].when[0], Condition)


def test_rules_without_an_activity_condition_see_every_touch_and_case_does_not_matter() -> None:
    model = Scoring(
        version="x",
        mql_threshold=1000,
        rules=[
            rule("any-long-call", "engagement", 7, {"field": "call_duration_s", "gte": 60}),
            rule("webinar", "engagement", 5, {"field": "activity", "equals": "Webinar"}),
        ],
    )
    touches = [touch("webinar", call_duration_s=90), touch("inbound_call", call_duration_s=90)]

    assert score(model, {}, touches, T0).engagement == 19
    assert score(model.model_copy(), {}, touches, T0).engagement == 19
