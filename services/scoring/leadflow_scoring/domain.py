"""Scoring arithmetic: pure functions of a profile, its touches, the model and `now`.

Fit rules test the profile once; engagement rules test each touch, and their points
fade with the touch's age (half-life). Older touches may come tallied per rule instead
(`tally`), so a person with many touches costs no more than one with a few. Caps bound
a rule, a category and a group. The grade (A-D x 1-4) and the tier follow, and every
step leaves a reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadflow.conditions import all_match
from leadflow.config import Scoring, ScoringRule
from leadflow.events import ScoreReason, Tier
from leadflow.scoring_model import Qualification
from leadflow_scoring import tally
from leadflow_scoring.profile import Touch, facts, merge_fields, touch_order
from leadflow_scoring.reasons import cap as cap_reason
from leadflow_scoring.reasons import decay_factor, describe, engagement_reason, fit_reason
from leadflow_scoring.reasons import why as tier_reason
from leadflow_scoring.rules import rulebook

__all__ = ["Score", "Touch", "decay_factor", "describe", "merge_fields", "score"]


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


def score(
    model: Scoring,
    fields: Mapping[str, Any],
    touches: Sequence[Touch],
    now: datetime,
    settled: tally.Tally | None = None,
) -> Score:
    """Score a profile at `now`: fit on its fields, engagement on each touch, then the tier.

    `settled` tallies the person's touches older than `touches` (see `tally`); without
    it, `touches` are all of them.
    """
    book = rulebook(model)
    ordered = sorted(touches, key=touch_order)
    known = facts(model.domains, fields)
    profile_doc = {"lead": fields, "facts": known}
    fit_hits = [
        _Hit(rule, fit_reason(rule))
        for rule in model.rules
        if rule.group == "fit" and all_match(rule.when, profile_doc)
    ]
    qualification = model.for_campaign(fields.get("campaign"))
    engagement_hits = [
        _Hit(rule, reason) for rule, reason in tally.hits(book, settled, profile_doc, now)
    ]
    seen: dict[str, int] = defaultdict(int, settled.seen if settled else {})
    hand_raise = tally.hand_raise(book, qualification, settled, profile_doc)
    for touch in ordered:
        seen[touch.activity] += 1
        doc = touch_document(fields, known, touch, seen[touch.activity])
        for rule in book.rules_for(touch.activity):
            if all_match(rule.when, doc):
                engagement_hits.append(_Hit(rule, engagement_reason(model, rule, touch, now)))
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
            caps.append(cap_reason(group, name, points, rule.max_points, f"rule {name}"))
            points = rule.max_points
        buckets[rule.category or f"rule:{name}"] += points
    total = 0
    for bucket, points in buckets.items():
        cap = model.caps.get(bucket)
        if cap is not None and points > cap:
            caps.append(cap_reason(group, bucket, points, cap, f"category {bucket}"))
            points = cap
        total += points
    group_cap = model.caps.get(group)
    if group_cap is not None and total > group_cap:
        caps.append(cap_reason(group, group, total, group_cap, f"{group}"))
        total = group_cap
    return total + negative, caps


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
            [tier_reason("disqualified", "disqualified by " + ", ".join(disqualified_by))],
        )
    if hand_raise is not None:
        return "mql", "hand-raise", [tier_reason("hand-raise", hand_raise)]
    reached = None
    if total >= q.mql_threshold:
        reached = ("threshold", f"score {total} reaches {bar}")
    elif grade in q.mql_grades:
        reached = ("grade", f"grade {grade} qualifies by itself")
    held: list[ScoreReason] = []
    if reached is not None and purchased and engagement < min_engagement:
        held = [
            tier_reason(
                "purchased-list",
                f"a purchased-list record does not qualify on fit alone: engagement {engagement} "
                f"is below {min_engagement}",
            )
        ]
        reached = None
    if reached is not None:
        return "mql", reached[0], [tier_reason(*reached)]
    if q.watch_threshold is not None and total >= q.watch_threshold:
        return (
            "watch",
            None,
            [
                *held,
                tier_reason(
                    "watch-list",
                    f"score {total} reaches the watch threshold {q.watch_threshold}, below {bar}",
                ),
            ],
        )
    below = bar if q.watch_threshold is None else f"the watch threshold {q.watch_threshold}"
    return "nurture", None, [*held, tier_reason("nurture", f"score {total} is below {below}")]
