"""Properties of the score: decay never raises it, engagement never lowers it, it is stable."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.config import Scoring, ScoringRule
from leadflow_scoring.domain import Touch, score

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ACTIVITIES = ["pricing_page", "webinar", "demo_request", "email_click", "download"]


@st.composite
def models(draw: st.DrawFn) -> Scoring:
    """A scoring model with positive engagement rules, optional caps and decay."""
    rules = []
    for i, activity in enumerate(
        draw(st.lists(st.sampled_from(ACTIVITIES), min_size=1, unique=True))
    ):
        rules.append(
            ScoringRule.model_validate(
                {
                    "name": f"r{i}",
                    "group": "engagement",
                    "points": draw(st.integers(1, 60)),
                    "when": [{"field": "activity", "equals": activity}],
                    "max_points": draw(st.none() | st.integers(0, 100)),
                    "category": draw(st.none() | st.sampled_from(["content", "web"])),
                    "half_life": draw(st.none() | st.integers(3600, 90 * 86400)),
                }
            )
        )
    rules.append(
        ScoringRule.model_validate(
            {
                "name": "fit",
                "group": "fit",
                "points": 20,
                "when": [{"field": "lead.country", "equals": "US"}],
            }
        )
    )
    caps = draw(
        st.dictionaries(st.sampled_from(["content", "web", "engagement"]), st.integers(0, 150))
    )
    caps = {
        k: v for k, v in caps.items() if k == "engagement" or any(r.category == k for r in rules)
    }
    return Scoring(
        version="p",
        mql_threshold=80,
        watch_threshold=40,
        engagement_half_life=draw(st.none() | st.just(timedelta(days=14))),
        caps=caps,
        rules=rules,
    )


touches = st.lists(
    st.builds(
        Touch,
        activity=st.sampled_from([*ACTIVITIES, "form_fill"]),
        source=st.just("web"),
        occurred_at=st.integers(0, 200 * 86400).map(lambda s: T0 + timedelta(seconds=s)),
        event_id=st.uuids().map(str),
    ),
    max_size=12,
)
fields = st.sampled_from([{}, {"country": "US"}, {"country": "FR", "job_title": "VP"}])
later = st.integers(0, 400 * 86400).map(lambda s: timedelta(seconds=s))


@settings(max_examples=200, deadline=None)
@given(models(), fields, touches, later, later)
def test_decay_never_increases_a_score(
    model: Scoring, profile: dict[str, str], history: list[Touch], a: timedelta, b: timedelta
) -> None:
    now = T0 + 200 * timedelta(days=1) + a
    assert (
        score(model, profile, history, now + b).total <= score(model, profile, history, now).total
    )


@settings(max_examples=200, deadline=None)
@given(models(), fields, touches, touches, later)
def test_adding_engagement_never_lowers_a_score(
    model: Scoring,
    profile: dict[str, str],
    history: list[Touch],
    more: list[Touch],
    after: timedelta,
) -> None:
    now = T0 + 200 * timedelta(days=1) + after
    before = score(model, profile, history, now)
    with_more = score(model, profile, history + more, now)
    assert with_more.total >= before.total
    assert with_more.engagement >= before.engagement


@settings(max_examples=200, deadline=None)
@given(models(), fields, touches, later, st.randoms(use_true_random=False))
def test_the_same_inputs_always_give_the_same_score(
    model: Scoring,
    profile: dict[str, str],
    history: list[Touch],
    after: timedelta,
    rnd: random.Random,
) -> None:
    now = T0 + after
    shuffled = list(history)
    rnd.shuffle(shuffled)
    first, again = score(model, profile, history, now), score(model, profile, shuffled, now)
    assert (first.total, first.tier, first.grade, first.reasons) == (
        again.total,
        again.tier,
        again.grade,
        again.reasons,
    )
    assert sum(r.points for r in first.reasons) == first.total
