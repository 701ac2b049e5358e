"""A person's scoring state in aggregate: its size and cost do not grow with their touches.

`Aggregate` keeps the fields as registers (`fields`), the first and last touch, the
count, the latest `keep` touches in full, and the older ones tallied per engagement rule
(`tally`). `apply` adds one touch, `merge` makes two people one, `evaluate` gives the
profile and the score: the database path (`service`) and the in-memory one (`replay`)
both use these, so they agree.

Up to `keep` touches (all of them recent) the score is exactly what scoring every touch
gives; beyond, the tally's documented differences apply to the older touches only. The
tally depends on the model's engagement rules: after they change, a person with tallied
touches must be folded again from their touches (`is_current`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from leadflow.config import Scoring
from leadflow_scoring import domain, tally
from leadflow_scoring import fields as registers
from leadflow_scoring.profile import Profile, Touch, touch_order, touch_point
from leadflow_scoring.rules import rulebook

# Touches kept in full: the score is exact up to this many, and a lead.scored carries a
# reason per recent touch (and one per rule for the rest).
RECENT_TOUCHES = 50


@dataclass(frozen=True)
class Aggregate:
    """What scoring keeps of one person."""

    fields: registers.Fields = field(default_factory=registers.Fields)
    touches: int = 0
    first: Touch | None = None
    last: Touch | None = None
    # The latest touches, oldest first, without their fields (those are in `fields`).
    recent: tuple[Touch, ...] = ()
    settled: tally.Tally | None = None
    keep: int = RECENT_TOUCHES


def apply(state: Aggregate, touch: Touch, model: Scoring) -> Aggregate:
    """`state` with one more touch of the person (in any order of time)."""
    book = rulebook(model)
    if not is_current(state, model):
        raise ValueError("the aggregate was tallied under other engagement rules; fold it again.")
    stamp = touch_order(touch)
    bare = replace(touch, fields={})
    settled = state.settled
    recent = list(state.recent)
    # A touch older than every recent one (it came late) is tallied at once.
    bisect.insort(recent, bare, key=touch_order)
    while len(recent) > state.keep:
        settled = tally.settle(settled, book, recent.pop(0))
    return Aggregate(
        fields=registers.record(state.fields, touch.fields, stamp),
        touches=state.touches + 1,
        first=bare if state.first is None else min(state.first, bare, key=touch_order),
        last=bare if state.last is None else max(state.last, bare, key=touch_order),
        recent=tuple(recent),
        settled=settled,
        keep=state.keep,
    )


def merge(a: Aggregate, b: Aggregate, model: Scoring) -> Aggregate:
    """One person from two: counts and tallies add up, registers and recent touches combine."""
    book = rulebook(model)
    settled = tally.merge(a.settled, b.settled, book)
    recent = sorted((*a.recent, *b.recent), key=touch_order)
    keep = max(a.keep, b.keep)
    while len(recent) > keep:
        settled = tally.settle(settled, book, recent.pop(0))
    ends = [t for t in (a.first, a.last, b.first, b.last) if t is not None]
    return Aggregate(
        fields=registers.merge(a.fields, b.fields),
        touches=a.touches + b.touches,
        first=min(ends, key=touch_order) if ends else None,
        last=max(ends, key=touch_order) if ends else None,
        recent=tuple(recent),
        settled=settled,
        keep=keep,
    )


def fold(touches: Iterable[Touch], model: Scoring, start: Aggregate | None = None) -> Aggregate:
    """`start` (or no touches) with `touches` applied oldest first."""
    state = start if start is not None else Aggregate()
    for touch in sorted(touches, key=touch_order):
        state = apply(state, touch, model)
    return state


def is_current(state: Aggregate, model: Scoring) -> bool:
    """Whether the state's tally (if any) was made under the model's engagement rules."""
    return state.settled is None or state.settled.key == rulebook(model).key


def profile(state: Aggregate) -> Profile:
    """The person's profile: fields, first and last touch, number of touches."""
    if state.first is None or state.last is None:
        raise ValueError("a profile needs at least one touch.")
    return Profile(
        fields=registers.values(state.fields),
        first_touch=touch_point(state.first),
        last_touch=touch_point(state.last),
        touches=state.touches,
    )


def evaluate(state: Aggregate, model: Scoring, now: datetime) -> tuple[Profile, domain.Score]:
    """The person's profile and their score at `now`."""
    person = profile(state)
    return person, domain.score(model, person.fields, state.recent, now, state.settled)
