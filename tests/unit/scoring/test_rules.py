"""A scoring model compiled once: its rules indexed by activity, and never stale after a change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow.config import Scoring
from leadflow.events import ScoreReason
from leadflow_scoring.domain import Touch, score
from leadflow_scoring.rules import rulebook

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def model(*rules: dict[str, Any], **extra: Any) -> Scoring:
    """A model with these rules (MQL at 60)."""
    return Scoring.model_validate(
        {"version": "t", "mql_threshold": 60, "rules": list(rules)} | extra
    )


def touch(activity: str, **detail: Any) -> Touch:
    """A touch an hour before NOW."""
    return Touch(
        activity=activity,
        source="web",
        occurred_at=NOW - timedelta(hours=1),
        detail=detail,
        event_id=f"{activity}-{sorted(detail.items())}",
    )


SENIOR = {"name": "senior", "group": "fit", "when": [{"field": "lead.job_title", "prefix": "vp"}]}


def test_a_model_is_compiled_once_and_a_changed_one_scores_by_its_own_rules() -> None:
    ten = model(SENIOR | {"points": 10})
    thirty = ten.model_copy(update={"rules": model(SENIOR | {"points": 30}).rules})
    vp = {"job_title": "VP Sales"}

    assert rulebook(ten) is rulebook(ten)
    assert score(ten, vp, [], NOW).fit == 10
    assert score(thirty, vp, [], NOW).fit == 30
    assert score(ten, vp, [], NOW).fit == 10


def test_engagement_rules_meet_the_touches_of_the_activity_they_require() -> None:
    scoring = model(
        {
            "name": "q4-demo",
            "group": "engagement",
            "points": 40,
            "when": [
                {"field": "campaign", "prefix": "q4"},
                {"field": "activity", "equals": " Demo_Request "},
            ],
        },
        {
            "name": "any-q4",
            "group": "engagement",
            "points": 1,
            "when": [{"field": "campaign", "prefix": "q4"}],
        },
    )

    def fired(*touches: Touch) -> list[str]:
        return [r.rule for r in score(scoring, {}, list(touches), NOW).reasons if r.points]

    assert fired(touch("demo_request", campaign="q4-launch")) == ["q4-demo", "any-q4"]
    assert fired(touch("DEMO_REQUEST ", campaign="Q4")) == ["q4-demo", "any-q4"]
    assert fired(touch("demo_request", campaign="spring")) == []
    assert fired(touch("webinar", campaign="q4-launch")) == ["any-q4"]
    assert fired(touch("never-configured", campaign="q4")) == ["any-q4"]


def test_facts_read_only_by_a_hand_raise_are_derived() -> None:
    scoring = model(
        hand_raises=[
            {
                "name": "business-call",
                "when": [
                    {"field": "activity", "equals": "inbound_call"},
                    {"field": "facts.email_type", "equals": "business"},
                ],
            }
        ],
    )
    call = [touch("inbound_call")]

    assert score(scoring, {"email": "jo@acme.com"}, call, NOW).qualified_by == "hand-raise"
    assert score(scoring, {"email": "jo@gmail.com"}, call, NOW).qualified_by is None


def test_reasons_are_written_when_read_and_scores_compare_by_them() -> None:
    scoring = model(
        SENIOR | {"points": 10},
        {
            "name": "visit",
            "group": "engagement",
            "points": 8,
            "when": [{"field": "activity", "equals": "visit"}],
        },
        engagement_half_life="1d",
    )
    vp = {"job_title": "VP Sales"}
    first = score(scoring, vp, [touch("visit")], NOW)
    again = score(scoring, vp, [touch("visit")], NOW)
    later = score(scoring, vp, [touch("visit")], NOW + timedelta(seconds=1))

    assert all(isinstance(r, ScoreReason) for r in first.reasons)
    assert [r.rule for r in first.reasons] == ["senior", "visit", "nurture"]
    assert first == again
    # The same points an instant later, but the reason tells another age.
    assert (later.fit, later.engagement, later.tier) == (first.fit, first.engagement, first.tier)
    assert later != first
