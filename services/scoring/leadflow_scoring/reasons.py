"""How a score explains itself: one `ScoreReason` per fit rule, touch, cap and tier decision.

Scoring works out the points at once and writes the words only when they are read: an
`Explained` is a reason's builder and its arguments, and `written` turns them into the
`ScoreReason`s a `lead.scored` carries (most decisions are made many times more often
than their reasons are read, e.g. by `leadflow simulate` or an unchanged score).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from leadflow.conditions import Condition
from leadflow.config import Scoring, ScoringRule
from leadflow.events import ScoreReason
from leadflow_scoring.profile import Touch

# A reason not yet written: the function that writes it and its arguments.
Explained = tuple[Callable[..., ScoreReason], tuple[Any, ...]]


def written(explained: Iterable[Explained]) -> list[ScoreReason]:
    """The reasons, written."""
    return [write(*args) for write, args in explained]


def decay_factor(age_s: float, half_life_s: float) -> float:
    """The share of points kept after `age_s` seconds: 1.0 when new, 0.5 at one half-life."""
    return float(0.5 ** (max(0.0, age_s) / half_life_s))


def faded(points: int, age_s: float, half_life_s: float | None) -> int:
    """A touch's points after `age_s` seconds (rounded half up), or all of them without decay."""
    if half_life_s is None:
        return points
    return math.floor(points * decay_factor(age_s, half_life_s) + 0.5)


def fit_reason(rule: ScoringRule, detail: str | None = None) -> ScoreReason:
    """A fit rule that matched the profile (`detail`: `fit_detail(rule)`, if known)."""
    return ScoreReason(
        rule=rule.name,
        group="fit",
        points=rule.points,
        detail=fit_detail(rule) if detail is None else detail,
        base_points=rule.points,
        disqualifies=rule.disqualify,
    )


def fit_detail(rule: ScoringRule) -> str:
    """What a fit rule's reason says: its description, or its conditions in words."""
    return f"{rule.description or describe(rule)}; fit never decays"


def engagement_reason(
    model: Scoring, rule: ScoringRule, touch: Touch, now: datetime
) -> ScoreReason:
    """An engagement rule that one touch fired, its points faded by the touch's age."""
    age_s = max(0.0, (now - touch.occurred_at).total_seconds())
    half_life = rule.half_life or model.engagement_half_life
    what = f"{touch.activity} via {touch.source}"
    if rule.description:
        what = f"{rule.description} ({what})"
    if rule.points <= 0 or not rule.decays or half_life is None:
        # Penalties never fade: a decaying penalty would raise the score as time passes.
        return ScoreReason(
            rule=rule.name,
            group="engagement",
            points=rule.points,
            detail=f"{what}, {age(age_s)}; no decay",
            base_points=rule.points,
            age_s=age_s,
            occurred_at=touch.occurred_at,
            disqualifies=rule.disqualify,
        )
    half_life_s = half_life.total_seconds()
    kept = decay_factor(age_s, half_life_s)
    points = faded(rule.points, age_s, half_life_s)
    return ScoreReason(
        rule=rule.name,
        group="engagement",
        points=points,
        detail=(
            f"{what}, {age(age_s)}; half-life {age(half_life_s, ago=False)} keeps "
            f"{kept:.0%} of {rule.points}"
        ),
        base_points=rule.points,
        decay=round(kept, 6),
        half_life_s=half_life_s,
        age_s=age_s,
        occurred_at=touch.occurred_at,
        disqualifies=rule.disqualify,
    )


def settled_reason(
    rule: ScoringRule,
    *,
    hits: int,
    kept_points: float,
    half_life_s: float | None,
    latest: datetime,
    latest_what: str,
    now: datetime,
) -> ScoreReason:
    """One engagement rule fired by many older touches, summed (see `tally`).

    Their points are rounded once, as a sum, where recent touches are rounded one by one.
    """
    age_s = max(0.0, (now - latest).total_seconds())
    base = hits * rule.points
    what = f"{hits} earlier touches, the latest {latest_what} {age(age_s)}"
    if rule.description:
        what = f"{rule.description}: {what}"
    if half_life_s is None:
        return ScoreReason(
            rule=rule.name,
            group="engagement",
            points=base,
            detail=f"{what}; no decay",
            base_points=base,
            age_s=age_s,
            occurred_at=latest,
            disqualifies=rule.disqualify,
        )
    kept = kept_points / base if base else 1.0
    return ScoreReason(
        rule=rule.name,
        group="engagement",
        points=math.floor(kept_points + 0.5),
        detail=(
            f"{what}; half-life {age(half_life_s, ago=False)} keeps {kept:.0%} of {base} "
            f"({rule.points} each)"
        ),
        base_points=base,
        decay=round(kept, 6),
        half_life_s=half_life_s,
        age_s=age_s,
        occurred_at=latest,
        disqualifies=rule.disqualify,
    )


def cap(group: str, name: str, points: int, limit: int, what: str) -> ScoreReason:
    """The points a cap took away (negative), with what was earned."""
    return ScoreReason(
        rule=f"cap:{name}",
        group="fit" if group == "fit" else "engagement",
        points=limit - points,
        detail=f"{what} counts at most {limit} points ({points} earned)",
        base_points=points,
    )


def why(rule: str, detail: str) -> ScoreReason:
    """A reason behind the tier (no points)."""
    return ScoreReason(rule=rule, group="qualification", points=0, detail=detail)


def describe(rule: ScoringRule) -> str:
    """A rule's conditions in words, e.g. `lead.company.size >= 200`."""
    return " and ".join(_condition_text(c) for c in rule.when)


def _condition_text(c: Condition) -> str:
    if c.exists is not None:
        return f"{c.field} {'is set' if c.exists else 'is empty'}"
    if c.equals is not None:
        return f"{c.field} is {c.equals}"
    if c.not_equals is not None:
        return f"{c.field} is not {c.not_equals}"
    if c.in_ is not None:
        return f"{c.field} in {', '.join(map(str, c.in_))}"
    if c.prefix is not None:
        return f"{c.field} starts with {c.prefix}"
    if c.regex is not None:
        return f"{c.field} matches the rule's pattern"
    bounds = [(">=", c.gte), (">", c.gt), ("<=", c.lte), ("<", c.lt)]
    return " and ".join(f"{c.field} {op} {v:g}" for op, v in bounds if v is not None)


def age(seconds: float, *, ago: bool = True) -> str:
    """A duration in words: `5m ago`, `2.5d ago`, `just now` (or `14d` with ago=False)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{seconds / size:.3g}{unit}"
            return f"{text} ago" if ago else text
    return "just now" if ago else f"{seconds:.3g}s"
