"""Distribution within a team: round robin, weighted (static, by conversion), least loaded."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from leadflow.config import Rep, Team
from leadflow_router.distribution import conversion_weight, pick, rotation

REPS = {r: Rep(id=r, name=r.title(), email=f"{r}@example.com") for r in ("a", "b", "c")}


def team(**fields: Any) -> Team:
    """A team of a, b and c."""
    return Team.model_validate(
        {"name": "t", "manager": {"name": "M", "email": "m@example.com"}, "reps": ["a", "b", "c"]}
        | fields
    )


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (None, ["a", "b", "c"]),
        ("a", ["b", "c", "a"]),
        ("c", ["a", "b", "c"]),
        ("z", ["a", "b", "c"]),
    ],
)
def test_rotation_starts_after_the_last_turn(last: str | None, expected: list[str]) -> None:
    assert rotation(["a", "b", "c"], last) == expected


def choose(t: Team, available: list[str], last: str | None = None, **kwargs: Any) -> str:
    return pick(
        t,
        available,
        reps=kwargs.pop("reps", REPS),
        last=last,
        open_leads=kwargs.pop("open_leads", {}),
        recent=kwargs.pop("recent", {}),
        conversions=kwargs.pop("conversions", {}),
    ).rep_id


@pytest.mark.parametrize(
    ("last", "available", "expected"),
    [
        (None, ["a", "b", "c"], "a"),
        ("a", ["a", "b", "c"], "b"),
        ("c", ["a", "b", "c"], "a"),
        ("a", ["a", "c"], "c"),
        ("b", ["a", "b"], "a"),
        ("a", ["a"], "a"),
    ],
)
def test_round_robin_gives_the_next_available_turn(
    last: str | None, available: list[str], expected: str
) -> None:
    assert choose(team(), available, last) == expected


def test_round_robin_explains_itself() -> None:
    chosen = pick(team(), ["b"], reps=REPS, last="a", open_leads={}, recent={}, conversions={})

    assert chosen.how.format(rep="Bea") == "round robin gives Bea the next turn"
    assert chosen.details == {"rotation": ["b"]}


def test_least_loaded_picks_the_fewest_open_leads_and_breaks_ties_by_turn() -> None:
    t = team(distribution="least_loaded")

    assert choose(t, ["a", "b", "c"], open_leads={"a": 3, "b": 1, "c": 2}) == "b"
    assert choose(t, ["a", "b", "c"], "a", open_leads={"a": 1, "b": 1, "c": 1}) == "b"
    assert choose(t, ["a", "c"], open_leads={"a": 3, "b": 0, "c": 2}) == "c"


def test_static_weights_share_leads_in_proportion() -> None:
    reps = {
        "a": REPS["a"].model_copy(update={"weight": 3.0}),
        "b": REPS["b"].model_copy(update={"weight": 1.0}),
        "c": REPS["c"].model_copy(update={"weight": 1.0}),
    }
    t = team(distribution="weighted")
    recent: Counter[str] = Counter()
    last = None
    for _ in range(50):
        last = choose(t, ["a", "b", "c"], last, reps=reps, recent=recent)
        recent[last] += 1

    assert recent == {"a": 30, "b": 10, "c": 10}


def test_weighted_skips_unavailable_reps_and_catches_up() -> None:
    t = team(distribution="weighted")

    assert choose(t, ["b", "c"], recent={"a": 0, "b": 5, "c": 2}) == "c"
    assert choose(t, ["a", "b", "c"], recent={"a": 0, "b": 5, "c": 2}) == "a"


def test_conversion_weights_favour_the_better_converter() -> None:
    t = team(distribution="weighted", weights="conversion")
    # a converts 9/10, b 1/10, c has no history (weight 0.5).
    conversions = {"a": (10, 9), "b": (10, 1)}
    recent: Counter[str] = Counter()
    last = None
    for _ in range(100):
        last = choose(t, ["a", "b", "c"], last, recent=recent, conversions=conversions)
        recent[last] += 1

    assert recent["a"] > recent["c"] > recent["b"] > 0
    chosen = pick(t, ["a"], reps=REPS, last=None, open_leads={}, recent={}, conversions=conversions)
    assert chosen.details["weights"] == {"a": round(10 / 12, 4)}
    assert "measured conversion" in chosen.how


@pytest.mark.parametrize(
    ("assigned", "converted", "expected"),
    [(0, 0, 0.5), (10, 9, 10 / 12), (10, 0, 1 / 12), (100, 50, 0.5)],
)
def test_conversion_weight_is_smoothed(assigned: int, converted: int, expected: float) -> None:
    assert conversion_weight(assigned, converted) == pytest.approx(expected)
