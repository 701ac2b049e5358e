"""A scoring model compiled once: its rules as ready tests, indexed by what can fire them.

Fit rules test the profile. An engagement rule's conditions test two things: the touch
(its activity, source, detail and `nth`) and the person (`lead.*`, `facts.*`, the profile
as it is now). The split lets a person's older touches be tallied per rule once, and the
person's part be tested when the score is read. Engagement rules are indexed by the
activity they require, so a touch meets only the rules it can fire.

The compiled form is memoised per model object: a changed model is a new object (the
configuration is frozen), so it is compiled afresh on its first use.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from leadflow.conditions import Condition, conjunction, lookup_path
from leadflow.config import Scoring, ScoringRule
from leadflow.scoring_model import Qualification
from leadflow_scoring.reasons import fit_detail

_ANY = "\x00any"
_PROFILE_ROOTS = ("lead", "facts")

Check = Callable[[Mapping[str, Any]], bool]
ValueTest = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One scoring rule compiled: its tests, what its points count towards, how they fade."""

    rule: ScoringRule
    name: str
    points: int
    # Every condition, but the activity the index already matched (engagement rules).
    test: Check
    # Engagement rules: the conditions on the touch (same exception), and on the person.
    on_touch: Check
    on_person: Check
    half_life_s: float | None
    max_points: int | None
    # The cap bucket: the rule's category, or the rule alone.
    bucket: str
    disqualify: bool
    # Fit rules: what their reason says (the same whenever they match).
    fit_detail: str | None


@dataclass(frozen=True, slots=True)
class CompiledHandRaise:
    """A hand-raise compiled: on the whole touch document, on the touch, on the person."""

    name: str
    test: Check
    on_touch: Check
    on_person: Check


@dataclass(frozen=True)
class Rulebook:
    """A model's rules compiled and indexed, and the key of its engagement side."""

    model: Scoring
    engagement: dict[str, ScoringRule]
    position: dict[str, int]
    # Rules or hand-raises the tally of a person's older touches depends on; a tally made
    # under another key is stale.
    key: str
    # The fields fit rules read, each looked up once per profile, and each fit rule's
    # conditions as tests of those values (by position in `fit_paths`).
    fit_paths: tuple[tuple[str, ...], ...] = ()
    fit_tests: tuple[tuple[CompiledRule, tuple[tuple[int, ValueTest], ...]], ...] = ()
    compiled: dict[str, CompiledRule] = field(default_factory=dict)
    on_activity: dict[str, tuple[CompiledRule, ...]] = field(default_factory=dict)
    hand_raises: tuple[CompiledHandRaise, ...] = ()
    # Whether any condition reads `facts.*` (else the facts need not be derived).
    reads_facts: bool = True
    # Whether a group's points can meet a cap (else they simply add up).
    capped: Mapping[str, bool] = field(default_factory=dict)
    disqualifies: bool = True
    fit_floors: tuple[tuple[str, int], ...] = ()
    engagement_floors: tuple[tuple[str, int], ...] = ()
    _qualifications: dict[Any, Qualification] = field(default_factory=dict)

    def fit_hits(self, profile: Mapping[str, Any]) -> list[CompiledRule]:
        """The fit rules that match the profile document, in the model's order."""
        values = [lookup_path(profile, path) for path in self.fit_paths]
        hits = []
        for rule, tests in self.fit_tests:
            for position, test in tests:
                if not test(values[position]):
                    break
            else:
                hits.append(rule)
        return hits

    def compiled_for(self, activity: str) -> tuple[CompiledRule, ...]:
        """The engagement rules a touch of `activity` can fire, in the model's order (their
        tests leave out the activity they require)."""
        return self.on_activity.get(activity.strip().lower(), self.on_activity[_ANY])

    def half_life_s(self, rule: ScoringRule) -> float | None:
        """The rule's half-life in seconds, or None when its points never fade."""
        return _half_life_s(self.model, rule)

    def qualification(self, campaign: Any) -> Qualification:
        """`Scoring.for_campaign`, remembered per campaign."""
        try:
            return self._qualifications[campaign]
        except KeyError:
            found = self._qualifications[campaign] = self.model.for_campaign(campaign)
            return found
        except TypeError:  # not a campaign name: let the model say what is wrong
            return self.model.for_campaign(campaign)

    def fit_grade(self, points: int) -> str:
        """`Grades.fit_grade` on the compiled floors."""
        for grade, floor in self.fit_floors:
            if points >= floor:
                return grade
        return "D"

    def engagement_grade(self, points: int) -> str:
        """`Grades.engagement_grade` on the compiled floors."""
        for grade, floor in self.engagement_floors:
            if points >= floor:
                return grade
        return "4"


_BOOKS: dict[int, Rulebook] = {}


def rulebook(model: Scoring) -> Rulebook:
    """The compiled rules of `model` (memoised per model object)."""
    cached = _BOOKS.get(id(model))
    if cached is not None and cached.model is model:
        return cached
    book = _compile(model)
    if len(_BOOKS) > 64:
        _BOOKS.clear()
    # The entry keeps the model alive, so its id cannot be reused by another while cached.
    _BOOKS[id(model)] = book
    return book


def _compile(model: Scoring) -> Rulebook:
    rules = [r for r in model.rules if r.group == "engagement"]
    required = {r.name: _required_activity(r) for r in rules}
    activities = {a for a in required.values() if a is not None}
    index = {
        activity: [r for r in rules if required[r.name] in (None, activity)]
        for activity in activities
    }
    index[_ANY] = [r for r in rules if required[r.name] is None]
    compiled = {r.name: _compile_rule(model, r) for r in model.rules}
    fit = [r for r in model.rules if r.group == "fit"]
    fit_paths = list(dict.fromkeys(c.path for r in fit for c in r.when))
    caps = model.caps
    capped = {
        group: group in caps
        or any(
            r.max_points is not None or (r.category or f"rule:{r.name}") in caps
            for r in model.rules
            if r.group == group
        )
        for group in ("fit", "engagement")
    }
    conditions = [c for r in model.rules for c in r.when]
    conditions += [c for h in model.hand_raises for c in h.when]
    return Rulebook(
        model=model,
        engagement={r.name: r for r in rules},
        position={r.name: i for i, r in enumerate(rules)},
        key=_key(model, rules),
        fit_paths=tuple(fit_paths),
        fit_tests=tuple(
            (compiled[r.name], tuple((fit_paths.index(c.path), c.on_value) for c in r.when))
            for r in fit
        ),
        compiled=compiled,
        on_activity={
            activity: tuple(compiled[r.name] for r in listed) for activity, listed in index.items()
        },
        hand_raises=tuple(
            CompiledHandRaise(
                h.name,
                conjunction(h.when),
                conjunction([c for c in h.when if not _on_profile(c)]),
                conjunction([c for c in h.when if _on_profile(c)]),
            )
            for h in model.hand_raises
        ),
        reads_facts=any(c.path[0] == "facts" for c in conditions),
        capped=capped,
        disqualifies=any(r.disqualify for r in model.rules),
        fit_floors=tuple(model.grades.fit.items()),
        engagement_floors=tuple(model.grades.engagement.items()),
    )


def _compile_rule(model: Scoring, rule: ScoringRule) -> CompiledRule:
    conditions = list(rule.when)
    if rule.group == "engagement":
        implied = _activity_condition(rule)
        if implied is not None:
            # The index only offers the rule to touches of this activity.
            del conditions[implied]
    return CompiledRule(
        rule=rule,
        name=rule.name,
        points=rule.points,
        test=conjunction(conditions),
        on_touch=conjunction([c for c in conditions if not _on_profile(c)]),
        on_person=conjunction([c for c in conditions if _on_profile(c)]),
        half_life_s=_half_life_s(model, rule),
        max_points=rule.max_points,
        bucket=rule.category or f"rule:{rule.name}",
        disqualify=rule.disqualify,
        fit_detail=fit_detail(rule) if rule.group == "fit" else None,
    )


def _half_life_s(model: Scoring, rule: ScoringRule) -> float | None:
    half_life = rule.half_life or model.engagement_half_life
    if rule.points <= 0 or not rule.decays or half_life is None:
        # Penalties never fade: a decaying penalty would raise the score as time passes.
        return None
    return half_life.total_seconds()


def _on_profile(condition: Condition) -> bool:
    return condition.path[0] in _PROFILE_ROOTS


def _activity_condition(rule: ScoringRule) -> int | None:
    """The position of the condition that makes the rule require one activity, if any."""
    for i, condition in enumerate(rule.when):
        if condition.field == "activity" and isinstance(condition.equals, str):
            return i
    return None


def _required_activity(rule: ScoringRule) -> str | None:
    position = _activity_condition(rule)
    if position is None:
        return None
    equals = rule.when[position].equals
    assert isinstance(equals, str)
    return equals.strip().lower()


def _key(model: Scoring, rules: Sequence[ScoringRule]) -> str:
    parts: dict[str, Any] = {
        "rules": [r.model_dump(mode="json") for r in rules],
        "hand_raises": [h.model_dump(mode="json") for h in model.hand_raises],
        "half_life": model.engagement_half_life.total_seconds()
        if model.engagement_half_life
        else None,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
