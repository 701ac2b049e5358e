"""Scoring arithmetic: pure functions of a profile, its touches, the model and `now`.

Fit rules test the profile once; engagement rules test each touch, and their points
fade with the touch's age (half-life). Caps bound a rule, a category and a group.
The grade (A-D x 1-4) and the tier follow, and every step leaves a reason.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadflow.conditions import Condition, all_match
from leadflow.config import Scoring, ScoringRule
from leadflow.events import ScoreReason, Tier
from leadflow.scoring_model import Qualification
from leadflow_scoring.profile import Touch, facts, merge_fields, touch_order

__all__ = ["Score", "Touch", "decay_factor", "merge_fields", "score"]


@dataclass(frozen=True)
class Score:
    """A scored profile: points by group, its grade, the tier they put it in, and why."""

    fit: int
    engagement: int
    tier: Tier
    reasons: list[ScoreReason]
    fit_grade: str = "D"
    engagement_grade: str = "4"
    qualified_by: str | None = None
    disqualified_by: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Fit and engagement together."""
        return self.fit + self.engagement

    @property
    def qualified(self) -> bool:
        """Whether the lead is an MQL, to be handed to sales now."""
        return self.tier == "mql"

    @property
    def grade(self) -> str:
        """The cell of the grade matrix, e.g. A1 (best fit, most engaged) or D4."""
        return self.fit_grade + self.engagement_grade


@dataclass(frozen=True)
class _Hit:
    rule: ScoringRule
    reason: ScoreReason


def decay_factor(age_s: float, half_life_s: float) -> float:
    """The share of points kept after `age_s` seconds: 1.0 when new, 0.5 at one half-life."""
    return float(0.5 ** (max(0.0, age_s) / half_life_s))


def score(
    model: Scoring, fields: Mapping[str, Any], touches: Sequence[Touch], now: datetime
) -> Score:
    """Score a profile at `now`: fit on its fields, engagement on each touch, then the tier."""
    ordered = sorted(touches, key=touch_order)
    known = facts(model.domains, fields)
    profile_doc = {"lead": fields, "facts": known}
    fit_hits = [
        _Hit(rule, _fit_reason(rule))
        for rule in model.rules
        if rule.group == "fit" and all_match(rule.when, profile_doc)
    ]
    by_activity = _engagement_rules(model)
    engagement_hits: list[_Hit] = []
    seen: dict[str, int] = defaultdict(int)
    hand_raise: str | None = None
    qualification = model.for_campaign(fields.get("campaign"))
    for touch in ordered:
        seen[touch.activity] += 1
        doc = touch_document(fields, known, touch, seen[touch.activity])
        for rule in by_activity.get(touch.activity.strip().lower(), by_activity[_ANY]):
            if all_match(rule.when, doc):
                engagement_hits.append(_Hit(rule, _engagement_reason(model, rule, touch, now)))
        if hand_raise is None:
            hand_raise = _hand_raise(model, qualification, touch, doc)
    fit, fit_caps = _group_total(model, "fit", fit_hits)
    engagement, engagement_caps = _group_total(model, "engagement", engagement_hits)
    reasons = [h.reason for h in fit_hits] + fit_caps
    reasons += [h.reason for h in engagement_hits] + engagement_caps
    disqualified_by = list(
        dict.fromkeys(h.rule.name for h in fit_hits + engagement_hits if h.rule.disqualify)
    )
    fit_grade = model.grades.fit_grade(fit)
    engagement_grade = model.grades.engagement_grade(engagement)
    tier, qualified_by, why = _tier(
        qualification,
        total=fit + engagement,
        engagement=engagement,
        grade=fit_grade + engagement_grade,
        hand_raise=hand_raise,
        disqualified_by=disqualified_by,
        purchased=fields.get("list_source") == "purchased_list",
        min_engagement=model.purchased_list_min_engagement,
    )
    return Score(
        fit=fit,
        engagement=engagement,
        tier=tier,
        reasons=reasons + why,
        fit_grade=fit_grade,
        engagement_grade=engagement_grade,
        qualified_by=qualified_by,
        disqualified_by=disqualified_by,
    )


_ANY = "\x00any"
_INDEXES: dict[int, tuple[Scoring, dict[str, list[ScoringRule]]]] = {}


def _engagement_rules(model: Scoring) -> dict[str, list[ScoringRule]]:
    """Engagement rules by the activity they require (most rules test `activity equals X`).

    Rules without such a condition apply to every activity; order stays the model's.
    Memoised per model: the scoring of one touch then tests only the rules that can fire.
    """
    cached = _INDEXES.get(id(model))
    if cached is not None and cached[0] is model:
        return cached[1]
    rules = [r for r in model.rules if r.group == "engagement"]
    required = {r.name: _required_activity(r) for r in rules}
    activities = {a for a in required.values() if a is not None}
    index = {
        activity: [r for r in rules if required[r.name] in (None, activity)]
        for activity in activities
    }
    index[_ANY] = [r for r in rules if required[r.name] is None]
    if len(_INDEXES) > 64:
        _INDEXES.clear()
    _INDEXES[id(model)] = (model, index)
    return index


def _required_activity(rule: ScoringRule) -> str | None:
    for condition in rule.when:
        if condition.field == "activity" and isinstance(condition.equals, str):
            return condition.equals.strip().lower()
    return None


def touch_document(
    fields: Mapping[str, Any], known: Mapping[str, Any], touch: Touch, nth: int
) -> dict[str, Any]:
    """What engagement rules and hand-raises test: the touch, its detail and the profile."""
    return {
        **touch.detail,
        "lead": fields,
        "facts": known,
        "activity": touch.activity,
        "source": touch.source,
        "nth": nth,
    }


def _fit_reason(rule: ScoringRule) -> ScoreReason:
    return ScoreReason(
        rule=rule.name,
        group="fit",
        points=rule.points,
        detail=f"{rule.description or describe(rule)}; fit never decays",
        base_points=rule.points,
        disqualifies=rule.disqualify,
    )


def _engagement_reason(
    model: Scoring, rule: ScoringRule, touch: Touch, now: datetime
) -> ScoreReason:
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
            detail=f"{what}, {_age(age_s)}; no decay",
            base_points=rule.points,
            age_s=age_s,
            occurred_at=touch.occurred_at,
            disqualifies=rule.disqualify,
        )
    half_life_s = half_life.total_seconds()
    kept = decay_factor(age_s, half_life_s)
    points = math.floor(rule.points * kept + 0.5)
    return ScoreReason(
        rule=rule.name,
        group="engagement",
        points=points,
        detail=(
            f"{what}, {_age(age_s)}; half-life {_age(half_life_s, ago=False)} keeps "
            f"{kept:.0%} of {rule.points}"
        ),
        base_points=rule.points,
        decay=round(kept, 6),
        half_life_s=half_life_s,
        age_s=age_s,
        occurred_at=touch.occurred_at,
        disqualifies=rule.disqualify,
    )


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


def _age(seconds: float, *, ago: bool = True) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{seconds / size:.3g}{unit}"
            return f"{text} ago" if ago else text
    return "just now" if ago else f"{seconds:.3g}s"


def _hand_raise(
    model: Scoring, qualification: Qualification, touch: Touch, doc: Mapping[str, Any]
) -> str | None:
    if touch.activity in qualification.hand_raise_activities:
        return f"{touch.activity} is a hand-raise"
    name = next((h.name for h in model.hand_raises if all_match(h.when, doc)), None)
    return f"{touch.activity} meets hand-raise {name}" if name else None


def _group_total(model: Scoring, group: str, hits: list[_Hit]) -> tuple[int, list[ScoreReason]]:
    """Points of one group after caps (rule, then category, then group), and a reason per cap."""
    positive: dict[str, int] = defaultdict(int)
    negative = 0
    rules: dict[str, ScoringRule] = {}
    for hit in hits:
        rules[hit.rule.name] = hit.rule
        if hit.reason.points > 0:
            positive[hit.rule.name] += hit.reason.points
        else:
            negative += hit.reason.points
    caps: list[ScoreReason] = []
    buckets: dict[str, int] = defaultdict(int)
    for name, points in positive.items():
        rule = rules[name]
        if rule.max_points is not None and points > rule.max_points:
            caps.append(_cap(group, name, points, rule.max_points, f"rule {name}"))
            points = rule.max_points
        buckets[rule.category or f"rule:{name}"] += points
    total = 0
    for bucket, points in buckets.items():
        cap = model.caps.get(bucket)
        if cap is not None and points > cap:
            caps.append(_cap(group, bucket, points, cap, f"category {bucket}"))
            points = cap
        total += points
    group_cap = model.caps.get(group)
    if group_cap is not None and total > group_cap:
        caps.append(_cap(group, group, total, group_cap, f"{group}"))
        total = group_cap
    return total + negative, caps


def _cap(group: str, name: str, points: int, cap: int, what: str) -> ScoreReason:
    return ScoreReason(
        rule=f"cap:{name}",
        group="fit" if group == "fit" else "engagement",
        points=cap - points,
        detail=f"{what} counts at most {cap} points ({points} earned)",
        base_points=points,
    )


def _tier(
    q: Qualification,
    *,
    total: int,
    engagement: int,
    grade: str,
    hand_raise: str | None,
    disqualified_by: list[str],
    purchased: bool,
    min_engagement: int,
) -> tuple[Tier, str | None, list[ScoreReason]]:
    """The tier, what qualified the lead (if it is an MQL) and the reasons behind the tier."""
    bar = f"the MQL threshold {q.mql_threshold}"
    if q.campaign is not None:
        bar += f" (campaign {q.campaign})"
    if disqualified_by:
        return (
            "disqualified",
            None,
            [_why("disqualified", "disqualified by " + ", ".join(disqualified_by))],
        )
    if hand_raise is not None:
        return "mql", "hand-raise", [_why("hand-raise", hand_raise)]
    reached = None
    if total >= q.mql_threshold:
        reached = ("threshold", f"score {total} reaches {bar}")
    elif grade in q.mql_grades:
        reached = ("grade", f"grade {grade} qualifies by itself")
    held: list[ScoreReason] = []
    if reached is not None and purchased and engagement < min_engagement:
        held = [
            _why(
                "purchased-list",
                f"a purchased-list record does not qualify on fit alone: engagement {engagement} "
                f"is below {min_engagement}",
            )
        ]
        reached = None
    if reached is not None:
        return "mql", reached[0], [_why(*reached)]
    if q.watch_threshold is not None and total >= q.watch_threshold:
        return (
            "watch",
            None,
            [
                *held,
                _why(
                    "watch-list",
                    f"score {total} reaches the watch threshold {q.watch_threshold}, below {bar}",
                ),
            ],
        )
    below = bar if q.watch_threshold is None else f"the watch threshold {q.watch_threshold}"
    return "nurture", None, [*held, _why("nurture", f"score {total} is below {below}")]


def _why(rule: str, detail: str) -> ScoreReason:
    return ScoreReason(rule=rule, group="qualification", points=0, detail=detail)
