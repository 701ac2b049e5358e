"""Scoring arithmetic: pure functions of a profile, its touches and the model (no IO, no clock)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadflow.conditions import all_match
from leadflow.config import Scoring
from leadflow.events import Lead, ScoreReason, Tier


@dataclass(frozen=True)
class Touch:
    """One thing the person did: a form fill, a download, a call."""

    activity: str
    source: str
    occurred_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """A scored profile: points by group, the tier they put it in, and why."""

    fit: int
    engagement: int
    tier: Tier
    reasons: list[ScoreReason]

    @property
    def total(self) -> int:
        """Fit and engagement together."""
        return self.fit + self.engagement

    @property
    def qualified(self) -> bool:
        """Whether the lead is an MQL, to be handed to sales now."""
        return self.tier == "mql"


def merge_fields(current: dict[str, Any], update: Lead) -> dict[str, Any]:
    """The profile's fields after a new event: the latest non-empty value of each field wins."""
    merged = dict(current)
    for name, value in update.model_dump(mode="json", exclude_none=True).items():
        if isinstance(value, dict):
            merged[name] = {**merged.get(name, {}), **value}
        elif value not in ("", []):
            merged[name] = value
    return merged


def score(model: Scoring, fields: dict[str, Any], touches: Sequence[Touch]) -> Score:
    """Score a profile: fit rules on its fields, engagement rules on each of its touches."""
    reasons: list[ScoreReason] = []
    fit = 0
    profile_doc = {"lead": fields}
    for rule in model.rules:
        if rule.group == "fit" and all_match(rule.when, profile_doc):
            fit += rule.points
            reasons.append(ScoreReason(rule=rule.name, group="fit", points=rule.points))
    engagement = 0
    for touch in touches:
        doc = {"lead": fields, "activity": touch.activity, "source": touch.source, **touch.detail}
        for rule in model.rules:
            if rule.group == "engagement" and all_match(rule.when, doc):
                engagement += rule.points
                reasons.append(
                    ScoreReason(
                        rule=rule.name,
                        group="engagement",
                        points=rule.points,
                        detail=f"{touch.activity} via {touch.source}",
                    )
                )
    total = fit + engagement
    hand_raise = next((t for t in touches if t.activity in model.hand_raise_activities), None)
    tier: Tier
    if total >= model.mql_threshold:
        tier = "mql"
        reasons.append(_qualification("threshold", f"{total} >= {model.mql_threshold}"))
    elif hand_raise is not None:
        tier = "mql"
        reasons.append(_qualification("hand-raise", f"{hand_raise.activity} is a hand-raise"))
    elif model.watch_threshold is not None and total >= model.watch_threshold:
        tier = "watch"
        reasons.append(_qualification("watch-list", f"{total} >= {model.watch_threshold}"))
    else:
        tier = "nurture"
    return Score(fit=fit, engagement=engagement, tier=tier, reasons=reasons)


def _qualification(rule: str, detail: str) -> ScoreReason:
    return ScoreReason(rule=rule, group="qualification", points=0, detail=detail)
