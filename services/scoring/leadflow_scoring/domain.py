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
from functools import cached_property
from operator import attrgetter
from typing import Any

from leadflow.config import Scoring
from leadflow.events import ScoreReason, Tier
from leadflow.scoring_model import Qualification
from leadflow_scoring import tally
from leadflow_scoring.profile import Touch, facts, merge_fields
from leadflow_scoring.reasons import (
    Explained,
    decay_factor,
    describe,
    engagement_reason,
    faded,
    fit_reason,
    written,
)
from leadflow_scoring.reasons import cap as cap_reason
from leadflow_scoring.reasons import why as tier_reason
from leadflow_scoring.rules import CompiledRule, Rulebook, rulebook

__all__ = ["Score", "Touch", "decay_factor", "describe", "merge_fields", "score"]

# touch_order as a C-level key: the same (occurred_at, event_id) tuple.
_TOUCH_ORDER = attrgetter("occurred_at", "event_id")


@dataclass(frozen=True, eq=False)
class Score:
    """A scored profile: points by group, its grade, the tier they put it in, and why."""

    fit: int
    engagement: int
    tier: Tier
    # The reasons, in order, to be written when read (see `reasons`).
    explained: tuple[Explained, ...] = field(repr=False)
    fit_grade: str = "D"
    engagement_grade: str = "4"
    qualified_by: str | None = None
    disqualified_by: list[str] = field(default_factory=list)

    @cached_property
    def reasons(self) -> list[ScoreReason]:
        """Why: a reason per fit rule, engagement hit and cap, then the tier's."""
        return written(self.explained)

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

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Score):
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash((self.fit, self.engagement, self.tier, self.fit_grade, self.engagement_grade))

    def _compared(self) -> tuple[Any, ...]:
        return (
            self.fit,
            self.engagement,
            self.tier,
            self.reasons,
            self.fit_grade,
            self.engagement_grade,
            self.qualified_by,
            self.disqualified_by,
        )


# One rule that fired: the rule, the points it gave, and its reason (not yet written).
_Hit = tuple[CompiledRule, int, Explained]


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
    ordered = sorted(touches, key=_TOUCH_ORDER)
    # Facts are only derived when some condition reads them (nothing else sees them).
    known = facts(model.domains, fields) if book.reads_facts else {}
    profile_doc = {"lead": fields, "facts": known}
    fit_hits: list[_Hit] = [
        (rule, rule.points, (fit_reason, (rule.rule, rule.fit_detail)))
        for rule in book.fit_hits(profile_doc)
    ]
    qualification = book.qualification(fields.get("campaign"))
    engagement_hits: list[_Hit] = list(tally.hits(book, settled, profile_doc, now))
    seen: dict[str, int] = dict(settled.seen) if settled else {}
    hand_raise = tally.hand_raise(book, qualification, settled, profile_doc)
    for touch in ordered:
        activity = touch.activity
        nth = seen[activity] = seen.get(activity, 0) + 1
        doc = touch_document(fields, known, touch, nth)
        age_s = -1.0
        for rule in book.compiled_for(activity):
            if rule.test(doc):
                if age_s < 0:
                    age_s = max(0.0, (now - touch.occurred_at).total_seconds())
                engagement_hits.append(
                    (
                        rule,
                        faded(rule.points, age_s, rule.half_life_s),
                        (engagement_reason, (model, rule.rule, touch, now)),
                    )
                )
        if hand_raise is None:
            hand_raise = _hand_raise(book, qualification, touch, doc)
    fit, fit_caps = _group_total(book, "fit", fit_hits)
    engagement, engagement_caps = _group_total(book, "engagement", engagement_hits)
    explained = [h[2] for h in fit_hits] + fit_caps
    explained += [h[2] for h in engagement_hits] + engagement_caps
    disqualified_by = (
        list(dict.fromkeys(h[0].name for h in fit_hits + engagement_hits if h[0].disqualify))
        if book.disqualifies
        else []
    )
    fit_grade = book.fit_grade(fit)
    engagement_grade = book.engagement_grade(engagement)
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
        explained=(*explained, *why),
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
    book: Rulebook, qualification: Qualification, touch: Touch, doc: Mapping[str, Any]
) -> str | None:
    if touch.activity in qualification.hand_raise_activities:
        return f"{touch.activity} is a hand-raise"
    name = next((h.name for h in book.hand_raises if h.test(doc)), None)
    return f"{touch.activity} meets hand-raise {name}" if name else None


def _group_total(book: Rulebook, group: str, hits: list[_Hit]) -> tuple[int, list[Explained]]:
    """Points of one group after caps (rule, then category, then group), and a reason per cap."""
    if not book.capped[group]:
        return sum(h[1] for h in hits), []
    positive: dict[str, int] = defaultdict(int)
    negative = 0
    rules: dict[str, CompiledRule] = {}
    for rule, points, _ in hits:
        rules[rule.name] = rule
        if points > 0:
            positive[rule.name] += points
        else:
            negative += points
    caps: list[Explained] = []
    buckets: dict[str, int] = defaultdict(int)
    for name, points in positive.items():
        rule = rules[name]
        if rule.max_points is not None and points > rule.max_points:
            caps.append((cap_reason, (group, name, points, rule.max_points, f"rule {name}")))
            points = rule.max_points
        buckets[rule.bucket] += points
    total = 0
    for bucket, points in buckets.items():
        cap = book.model.caps.get(bucket)
        if cap is not None and points > cap:
            caps.append((cap_reason, (group, bucket, points, cap, f"category {bucket}")))
            points = cap
        total += points
    group_cap = book.model.caps.get(group)
    if group_cap is not None and total > group_cap:
        caps.append((cap_reason, (group, group, total, group_cap, f"{group}")))
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
) -> tuple[Tier, str | None, list[Explained]]:
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
    held: list[Explained] = []
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


def _why(rule: str, detail: str) -> Explained:
    return (tier_reason, (rule, detail))
