"""A person in aggregate: applied touch by touch or merged, it scores as all their touches do."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.config import Scoring, ScoringRule
from leadflow_scoring import aggregate, snapshot
from leadflow_scoring.aggregate import Aggregate, apply, evaluate, fold, merge
from leadflow_scoring.domain import Score, score
from leadflow_scoring.profile import Touch, build_profile

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
ACTIVITIES = ["pricing_page", "webinar", "demo_request", "page_visit", "inbound_call"]
VALID_PHONE, MISTYPED_PHONE = "+16135550188", "+1613555"


def rule(name: str, group: str, points: int, *when: dict[str, Any], **extra: Any) -> ScoringRule:
    """A scoring rule."""
    return ScoringRule.model_validate(
        {"name": name, "group": group, "points": points, "when": list(when), **extra}
    )


def on(activity: str) -> dict[str, Any]:
    """The condition `activity == ...`."""
    return {"field": "activity", "equals": activity}


@st.composite
def models(draw: st.DrawFn, *, decays: bool = True) -> Scoring:
    """Models whose engagement rules test the touch, its nth and the person, with caps,
    penalties, disqualifying rules and hand-raises."""
    half_life = st.none() | st.integers(3600, 60 * 86400) if decays else st.none()
    rules = [
        rule(
            f"r{i}",
            "engagement",
            draw(st.integers(1, 40)),
            on(activity),
            max_points=draw(st.none() | st.integers(0, 80)),
            category=draw(st.none() | st.sampled_from(["content", "web"])),
            half_life=draw(half_life),
            decays=decays and draw(st.booleans()),
        )
        for i, activity in enumerate(
            draw(st.lists(st.sampled_from(ACTIVITIES), min_size=1, max_size=4, unique=True))
        )
    ]
    rules += [
        rule("repeat", "engagement", 5, on("page_visit"), {"field": "nth", "gte": 2}),
        rule("senior-call", "engagement", 12, {"field": "lead.job_title", "regex": "(?i)vp"}),
        rule("long-call", "engagement", 9, {"field": "call_duration_s", "gte": 120}),
        rule("bounce", "engagement", -4, on("bounce")),
        rule(
            "spam-form",
            "engagement",
            0,
            on("form_fill"),
            {"field": "facts.email_type", "equals": "disposable"},
            disqualify=True,
        ),
        rule("us", "fit", 20, {"field": "lead.country", "equals": "US"}),
        rule("invalid-phone", "fit", -15, {"field": "facts.phone_valid", "equals": False}),
    ]
    caps = draw(
        st.dictionaries(st.sampled_from(["content", "web", "engagement"]), st.integers(0, 90))
    )
    caps = {
        k: v for k, v in caps.items() if k == "engagement" or any(r.category == k for r in rules)
    }
    return Scoring.model_validate(
        {
            "version": "p",
            "mql_threshold": 70,
            "watch_threshold": 30,
            "engagement_half_life": draw(st.none() | st.just("14d")) if decays else None,
            "caps": caps,
            "rules": rules,
            "hand_raise_activities": draw(st.sampled_from([["demo_request"], []])),
            "hand_raises": [
                {
                    "name": "bant-call",
                    "when": [
                        on("inbound_call"),
                        {"field": "answers.budget", "equals": "yes"},
                        {"field": "lead.country", "equals": "US"},
                    ],
                }
            ],
        }
    )


lead_fields = st.fixed_dictionaries(
    {},
    optional={
        "email": st.sampled_from(["ana@northwind.example", "bo@mailinator.com"]),
        "job_title": st.sampled_from(["VP Sales", "Analyst", ""]),
        "country": st.sampled_from(["US", "FR"]),
        "phone": st.sampled_from([VALID_PHONE, MISTYPED_PHONE]),
        "company": st.fixed_dictionaries(
            {}, optional={"size": st.integers(1, 900), "industry": st.sampled_from(["saas", ""])}
        ),
    },
)
details = st.fixed_dictionaries(
    {},
    optional={
        "call_duration_s": st.integers(0, 600),
        "answers": st.just({"budget": "yes"}),
        "campaign": st.sampled_from(["q4", "always-on"]),
    },
)


@st.composite
def histories(draw: st.DrawFn, max_size: int = 12) -> list[Touch]:
    """Touches of one person (distinct event ids) at times within 120 days."""
    size = draw(st.integers(1, max_size))
    return [
        Touch(
            activity=draw(st.sampled_from([*ACTIVITIES, "bounce", "form_fill"])),
            source=draw(st.sampled_from(["web", "ivr"])),
            occurred_at=T0 + timedelta(seconds=draw(st.integers(0, 120 * 86400))),
            detail=draw(details),
            event_id=f"e{i:04d}",
            fields=draw(lead_fields),
        )
        for i in range(size)
    ]


later = st.integers(0, 200 * 86400).map(lambda s: T0 + 120 * DAY + timedelta(seconds=s))


def full_score(model: Scoring, touches: list[Touch], now: datetime) -> tuple[Any, Score]:
    """The profile and score from every touch, as scoring before aggregates did."""
    person = build_profile(touches)
    return person, score(model, person.fields, touches, now)


def one_by_one(model: Scoring, touches: list[Touch], keep: int = 50) -> Aggregate:
    """Touches applied in the order given (their arrival order)."""
    state = Aggregate(keep=keep)
    for touch in touches:
        state = apply(state, touch, model)
    return state


def outcome(result: Score) -> tuple[Any, ...]:
    """Everything of a score but its engagement reasons per touch."""
    caps = [r for r in result.reasons if r.rule.startswith("cap:") or r.group == "qualification"]
    return (
        result.fit,
        result.engagement,
        result.tier,
        result.grade,
        result.qualified_by,
        result.disqualified_by,
        caps,
    )


# --- exact while every touch is recent -------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(models(), histories(), later, st.randoms(use_true_random=False))
def test_touches_applied_in_any_order_score_as_the_full_list(
    model: Scoring, touches: list[Touch], now: datetime, rnd: random.Random
) -> None:
    arrival = list(touches)
    rnd.shuffle(arrival)

    person, result = evaluate(one_by_one(model, arrival), model, now)

    assert (person, result) == full_score(model, touches, now)


@settings(max_examples=150, deadline=None)
@given(models(), histories(), st.integers(0, 12), later)
def test_merging_two_people_is_folding_all_their_touches(
    model: Scoring, touches: list[Touch], cut: int, now: datetime
) -> None:
    a, b = touches[:cut], touches[cut:]

    merged = merge(fold(a, model), fold(b, model), model)

    assert merged == fold(touches, model) == merge(fold(b, model), fold(a, model), model)
    assert evaluate(merged, model, now) == full_score(model, touches, now)


@settings(max_examples=100, deadline=None)
@given(models(), histories(), st.integers(0, 5))
def test_the_stored_form_gives_back_the_same_aggregate(
    model: Scoring, touches: list[Touch], keep: int
) -> None:
    state = fold(touches, model, Aggregate(keep=keep))

    document = json.loads(json.dumps(snapshot.dump(state)))

    assert snapshot.load(document) == (state, [])


# --- bounded beyond the recent window ----------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(models(decays=False), histories(max_size=30), st.integers(0, 6), later)
def test_tallied_touches_count_exactly_when_points_do_not_fade(
    model: Scoring, touches: list[Touch], keep: int, now: datetime
) -> None:
    """In time order and without decay, only the reasons of the tallied touches differ."""
    in_order = sorted(touches, key=lambda t: (t.occurred_at, t.event_id))
    state = one_by_one(model, in_order, keep)

    person, result = evaluate(state, model, now)
    expected_person, expected = full_score(model, touches, now)

    assert person == expected_person
    assert outcome(result) == outcome(expected)
    assert sum(r.points for r in result.reasons) == result.total
    assert len(state.recent) == min(keep, len(touches))


@settings(max_examples=150, deadline=None)
@given(models(), histories(max_size=30), st.integers(0, 6), later)
def test_tallied_touches_differ_only_by_rounding_once_per_rule(
    model: Scoring, touches: list[Touch], keep: int, now: datetime
) -> None:
    in_order = sorted(touches, key=lambda t: (t.occurred_at, t.event_id))
    state = one_by_one(model, in_order, keep)

    _, result = evaluate(state, model, now)
    _, expected = full_score(model, touches, now)

    tallied = state.settled.rules.values() if state.settled else []
    # Each tallied touch is off by under half a point, the rounded sum by at most half.
    bound = sum(t.hits / 2 + 0.5 for t in tallied)
    assert abs(result.engagement - expected.engagement) <= bound
    assert result.fit == expected.fit
    assert sum(r.points for r in result.reasons) == result.total


@settings(max_examples=100, deadline=None)
@given(models(decays=False), histories(max_size=30), st.integers(0, 30), st.integers(0, 5), later)
def test_merging_people_with_tallies_adds_them_up(
    model: Scoring, touches: list[Touch], cut: int, keep: int, now: datetime
) -> None:
    no_nth = model.model_copy(update={"rules": [r for r in model.rules if r.name != "repeat"]})
    a, b = touches[:cut], touches[cut:]
    start = Aggregate(keep=keep)

    merged = merge(fold(a, no_nth, start), fold(b, no_nth, start), no_nth)

    _, result = evaluate(merged, no_nth, now)
    _, expected = full_score(no_nth, touches, now)
    assert merged.touches == len(touches)
    tallied = sorted(touches, key=lambda t: (t.occurred_at, t.event_id))[: len(touches) - keep]
    if merged.settled is not None:
        assert merged.settled.touches + len(merged.recent) == len(touches)
        assert dict(merged.settled.seen) == Counter(t.activity for t in tallied)
    assert (result.fit, result.engagement, result.tier) == (
        expected.fit,
        expected.engagement,
        expected.tier,
    )


# --- examples ---------------------------------------------------------------------------

MODEL = Scoring(
    version="x",
    mql_threshold=100,
    engagement_half_life=10 * DAY,
    hand_raise_activities=["demo_request"],
    caps={"engagement": 60},
    rules=[
        rule("visit", "engagement", 10, on("page_visit"), max_points=30),
        rule("demo", "engagement", 40, on("demo_request")),
    ],
)


def visit(i: int, at: datetime = T0, activity: str = "page_visit") -> Touch:
    """A touch of the examples, with its own event id."""
    return Touch(activity, "web", at, {}, f"v{i:06d}", {"email": "ana@northwind.example"})


def test_a_spammed_person_stays_the_same_size() -> None:
    small = fold([visit(i) for i in range(200)], MODEL)
    large = fold([visit(i) for i in range(2000)], MODEL)

    _, result = evaluate(large, MODEL, T0)

    assert large.touches == 2000
    assert len(large.recent) == aggregate.RECENT_TOUCHES
    assert len(json.dumps(snapshot.dump(large))) <= len(json.dumps(snapshot.dump(small))) + 16
    assert len(result.reasons) == aggregate.RECENT_TOUCHES + 3  # + tally, cap, tier
    [tallied] = [r for r in result.reasons if r.base_points == 10 * 1950]
    assert (tallied.rule, tallied.points) == ("visit", 10 * 1950)
    assert result.engagement == 30


def test_a_tally_decays_forward_exactly() -> None:
    times = [T0 + timedelta(hours=7 * i) for i in range(40)]
    state = fold([visit(i, at) for i, at in enumerate(times)], MODEL, Aggregate(keep=0))

    for now in (times[-1], times[-1] + 3 * DAY, times[-1] + 45 * DAY):
        _, result = evaluate(state, MODEL, now)
        [reason] = [r for r in result.reasons if r.rule == "visit"]
        faded = sum(10 * 0.5 ** ((now - at).total_seconds() / (10 * 86400)) for at in times)
        assert reason.points == math.floor(faded + 0.5)


def test_a_hand_raise_among_tallied_touches_still_qualifies() -> None:
    touches = [visit(0, T0, "demo_request")] + [visit(i, T0 + i * DAY) for i in range(1, 9)]
    state = fold(touches, MODEL, Aggregate(keep=2))

    _, result = evaluate(state, MODEL, T0 + 9 * DAY)

    assert (result.tier, result.qualified_by) == ("mql", "hand-raise")
    assert result.reasons[-1].detail == "demo_request is a hand-raise"


def test_a_touch_older_than_the_tally_is_tallied() -> None:
    state = fold([visit(i, T0 + i * DAY) for i in range(1, 6)], MODEL, Aggregate(keep=2))

    late = apply(state, visit(0, T0), MODEL)

    assert late.recent == state.recent
    assert late.settled is not None
    assert late.settled.touches == 4
    assert late.first is not None
    assert late.first.event_id == "v000000"


def test_a_tally_made_under_other_rules_must_be_folded_again() -> None:
    state = fold([visit(i) for i in range(5)], MODEL, Aggregate(keep=2))
    changed = MODEL.model_copy(update={"engagement_half_life": DAY})
    fit_only = MODEL.model_copy(update={"mql_threshold": 90})

    assert aggregate.is_current(state, fit_only)
    assert not aggregate.is_current(state, changed)
    with pytest.raises(ValueError, match="fold it again"):
        apply(state, visit(9), changed)


def test_a_profile_needs_a_touch() -> None:
    with pytest.raises(ValueError, match="at least one touch"):
        aggregate.profile(Aggregate())


def test_a_later_mistyped_phone_never_replaces_a_valid_one_in_any_order() -> None:
    valid = replace(visit(1, T0), fields={"phone": VALID_PHONE})
    typo = replace(visit(2, T0 + DAY), fields={"phone": MISTYPED_PHONE})
    other = replace(visit(3, T0 + 2 * DAY), fields={"phone": "+14155550100"})

    assert aggregate.profile(fold([typo, valid], MODEL)).fields["phone"] == VALID_PHONE
    state = apply(apply(Aggregate(), typo, MODEL), valid, MODEL)
    assert aggregate.profile(state).fields["phone"] == VALID_PHONE
    assert aggregate.profile(apply(state, other, MODEL)).fields["phone"] == "+14155550100"


def test_pending_touches_are_given_back_to_fold() -> None:
    document = {"v": 1, "pending": [snapshot.dump(fold([visit(1)], MODEL))["recent"][0]]}

    state, pending = snapshot.load(document)

    assert state == Aggregate()
    assert [t.event_id for t in pending] == ["v000001"]
    with pytest.raises(ValueError, match="unknown aggregate version"):
        snapshot.load({"v": 99})
