"""The engagement side of a scoring model, compiled once: which rules a touch can fire.

An engagement rule's conditions test two things: the touch (its activity, source,
detail and `nth`) and the person (`lead.*`, `facts.*`, the profile as it is now). The
split lets a person's older touches be tallied per rule once, and the person's part be
tested when the score is read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from leadflow.conditions import Condition
from leadflow.config import Scoring, ScoringRule

_ANY = "\x00any"
_PROFILE_ROOTS = ("lead", "facts")


@dataclass(frozen=True)
class Rulebook:
    """A model's engagement rules indexed by activity, their conditions split, and its key."""

    model: Scoring
    by_activity: dict[str, list[ScoringRule]]
    engagement: dict[str, ScoringRule]
    on_touch: dict[str, list[Condition]]
    on_profile: dict[str, list[Condition]]
    position: dict[str, int]
    # Rules or hand-raises the tally of a person's older touches depends on; a tally made
    # under another key is stale.
    key: str

    def rules_for(self, activity: str) -> list[ScoringRule]:
        """The engagement rules a touch of `activity` can fire, in the model's order."""
        return self.by_activity.get(activity.strip().lower(), self.by_activity[_ANY])

    def half_life_s(self, rule: ScoringRule) -> float | None:
        """The rule's half-life in seconds, or None when its points never fade."""
        half_life = rule.half_life or self.model.engagement_half_life
        if rule.points <= 0 or not rule.decays or half_life is None:
            # Penalties never fade: a decaying penalty would raise the score as time passes.
            return None
        return half_life.total_seconds()


_BOOKS: dict[int, Rulebook] = {}


def rulebook(model: Scoring) -> Rulebook:
    """The compiled engagement rules of `model` (memoised per model object)."""
    cached = _BOOKS.get(id(model))
    if cached is not None and cached.model is model:
        return cached
    rules = [r for r in model.rules if r.group == "engagement"]
    required = {r.name: _required_activity(r) for r in rules}
    activities = {a for a in required.values() if a is not None}
    index = {
        activity: [r for r in rules if required[r.name] in (None, activity)]
        for activity in activities
    }
    index[_ANY] = [r for r in rules if required[r.name] is None]
    on_touch: dict[str, list[Condition]] = {}
    on_profile: dict[str, list[Condition]] = {}
    named = [(r.name, r.when) for r in rules]
    named += [(_hand_raise_key(h.name), h.when) for h in model.hand_raises]
    for name, when in named:
        on_touch[name] = [c for c in when if not _on_profile(c)]
        on_profile[name] = [c for c in when if _on_profile(c)]
    book = Rulebook(
        model=model,
        by_activity=index,
        engagement={r.name: r for r in rules},
        on_touch=on_touch,
        on_profile=on_profile,
        position={r.name: i for i, r in enumerate(rules)},
        key=_key(model, rules),
    )
    if len(_BOOKS) > 64:
        _BOOKS.clear()
    _BOOKS[id(model)] = book
    return book


def hand_raise_conditions(book: Rulebook, name: str) -> tuple[list[Condition], list[Condition]]:
    """A hand-raise's conditions on the touch, and on the person."""
    key = _hand_raise_key(name)
    return book.on_touch[key], book.on_profile[key]


def _hand_raise_key(name: str) -> str:
    # Hand-raises and rules share the condition tables; this keeps their names apart.
    return "hand-raise:" + name


def _on_profile(condition: Condition) -> bool:
    return condition.field.split(".", 1)[0] in _PROFILE_ROOTS


def _required_activity(rule: ScoringRule) -> str | None:
    for condition in rule.when:
        if condition.field == "activity" and isinstance(condition.equals, str):
            return condition.equals.strip().lower()
    return None


def _key(model: Scoring, rules: list[ScoringRule]) -> str:
    parts: dict[str, Any] = {
        "rules": [r.model_dump(mode="json") for r in rules],
        "hand_raises": [h.model_dump(mode="json") for h in model.hand_raises],
        "half_life": model.engagement_half_life.total_seconds()
        if model.engagement_half_life
        else None,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
