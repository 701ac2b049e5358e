"""A person's older touches tallied per engagement rule, so a score never re-reads them.

A touch leaves a person's recent touches (see `aggregate`) into this tally: its part of
each engagement rule (activity, source, detail, `nth`) is tested once, and each rule
keeps its hits, its first and latest touch, and its points faded to the latest touch's
time. Exponential decay is multiplicative, so the points at `now` are that sum faded by
`now - latest`: exact, whatever the number of touches. The person's part of a rule
(`lead.*`, `facts.*`) is tested when the score is read, against the profile as it is then.

What differs from scoring every touch one by one (only for touches in a tally):
* a rule's faded points are rounded once, as a sum, not once per touch, so they can
  differ from the per-touch sum by the rounding of each touch (under half a point each);
* one reason per rule stands for all its tallied touches;
* a touch older than some already tallied touch (it arrived after more than the recent
  window of newer ones) counts with `nth` = the touches of its activity so far + 1, and
  does not shift the `nth` of the tallied touches after it;
* when `now` is before the latest tallied touch (a clock behind the sender's), the
  tally counts as new rather than each older touch at its own age.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from leadflow.config import ScoringRule
from leadflow.events import ScoreReason
from leadflow.scoring_model import Qualification
from leadflow_scoring.fields import Stamp
from leadflow_scoring.profile import Touch, touch_order
from leadflow_scoring.reasons import Explained, decay_factor, settled_reason
from leadflow_scoring.rules import CompiledRule, Rulebook


@dataclass(frozen=True)
class RuleTally:
    """One engagement rule over the tallied touches that fired it."""

    hits: int
    first: Stamp
    latest: Stamp
    latest_what: str
    # The hits' points faded to the latest hit's time (hits x points when they never fade).
    points: float


@dataclass(frozen=True)
class FirstTouch:
    """The earliest tallied touch that fired a hand-raise."""

    stamp: Stamp
    activity: str


@dataclass(frozen=True)
class Tally:
    """Tallied touches of one person under one model (`key`, see `rules.Rulebook.key`)."""

    key: str
    touches: int
    newest: Stamp
    seen: Mapping[str, int]
    firsts: Mapping[str, Stamp]
    rules: Mapping[str, RuleTally]
    hand_raises: Mapping[str, FirstTouch]


def settle(tally: Tally | None, book: Rulebook, touch: Touch) -> Tally:
    """`tally` with one more touch counted (the next of its activity)."""
    stamp = touch_order(touch)
    seen = dict(tally.seen) if tally else {}
    nth = seen.get(touch.activity, 0) + 1
    seen[touch.activity] = nth
    doc: dict[str, Any] = {
        **touch.detail,
        "activity": touch.activity,
        "source": touch.source,
        "nth": nth,
    }
    rules = dict(tally.rules) if tally else {}
    for compiled in book.compiled_for(touch.activity):
        if compiled.on_touch(doc):
            rule = compiled.rule
            hit = RuleTally(1, stamp, stamp, _what(touch), float(rule.points))
            current = rules.get(rule.name)
            rules[rule.name] = hit if current is None else _combine(book, rule, current, hit)
    raised = dict(tally.hand_raises) if tally else {}
    for hand_raise in book.hand_raises:
        earliest = raised.get(hand_raise.name)
        if (earliest is None or stamp < earliest.stamp) and hand_raise.on_touch(doc):
            raised[hand_raise.name] = FirstTouch(stamp, touch.activity)
    firsts = dict(tally.firsts) if tally else {}
    firsts[touch.activity] = min(firsts.get(touch.activity, stamp), stamp)
    return Tally(
        key=book.key,
        touches=(tally.touches if tally else 0) + 1,
        newest=max(tally.newest, stamp) if tally else stamp,
        seen=seen,
        firsts=firsts,
        rules=rules,
        hand_raises=raised,
    )


def merge(a: Tally | None, b: Tally | None, book: Rulebook) -> Tally | None:
    """The tally of two people made one (both made under `book`)."""
    if a is None or b is None:
        return a or b
    if a.key != b.key or a.key != book.key:
        raise ValueError("tallies made under different scoring models cannot be merged.")
    rules = dict(a.rules)
    for name, theirs in b.rules.items():
        ours = rules.get(name)
        rule = book.engagement[name]
        rules[name] = theirs if ours is None else _combine(book, rule, ours, theirs)
    raised = dict(a.hand_raises)
    for name, first in b.hand_raises.items():
        if name not in raised or first.stamp < raised[name].stamp:
            raised[name] = first
    return Tally(
        key=a.key,
        touches=a.touches + b.touches,
        newest=max(a.newest, b.newest),
        seen={k: a.seen.get(k, 0) + b.seen.get(k, 0) for k in {*a.seen, *b.seen}},
        firsts={k: min(v, a.firsts.get(k, v)) for k, v in {**a.firsts, **b.firsts}.items()},
        rules=rules,
        hand_raises=raised,
    )


def hits(
    book: Rulebook, tally: Tally | None, person: Mapping[str, Any], now: datetime
) -> Iterator[tuple[CompiledRule, int, Explained]]:
    """The points and reason (not yet written) of each tallied rule whose conditions on the
    person hold, in the order of their first touch (the order scoring touch by touch gives)."""
    if tally is None:
        return
    order = sorted(tally.rules.items(), key=lambda item: (item[1].first, book.position[item[0]]))
    for name, counted in order:
        rule = book.compiled[name]
        if not rule.on_person(person):
            continue
        half_life_s = rule.half_life_s
        kept = counted.points
        if half_life_s is not None:
            kept *= decay_factor((now - counted.latest[0]).total_seconds(), half_life_s)
        # As settled_reason counts them: the faded sum rounded once.
        points = rule.points * counted.hits if half_life_s is None else math.floor(kept + 0.5)
        yield (
            rule,
            points,
            (
                _settled_reason,
                (
                    rule.rule,
                    counted.hits,
                    kept,
                    half_life_s,
                    counted.latest[0],
                    counted.latest_what,
                    now,
                ),
            ),
        )


def _settled_reason(
    rule: ScoringRule,
    hits: int,
    kept_points: float,
    half_life_s: float | None,
    latest: datetime,
    latest_what: str,
    now: datetime,
) -> ScoreReason:
    return settled_reason(
        rule,
        hits=hits,
        kept_points=kept_points,
        half_life_s=half_life_s,
        latest=latest,
        latest_what=latest_what,
        now=now,
    )


def hand_raise(
    book: Rulebook, qualification: Qualification, tally: Tally | None, person: Mapping[str, Any]
) -> str | None:
    """Why the earliest tallied hand-raise qualifies the person, if one does."""
    if tally is None:
        return None
    found: list[tuple[Stamp, str, int]] = [
        (stamp, activity, -1)
        for activity, stamp in tally.firsts.items()
        if activity in qualification.hand_raise_activities
    ]
    for position, rule in enumerate(book.hand_raises):
        first = tally.hand_raises.get(rule.name)
        if first is not None and rule.on_person(person):
            found.append((first.stamp, first.activity, position))
    if not found:
        return None
    # The earliest touch decides; at that touch, an activity that is a hand-raise comes
    # before the model's hand-raises, and those in the model's order.
    _, activity, position = min(found, key=lambda f: (f[0], f[2]))
    if position < 0:
        return f"{activity} is a hand-raise"
    return f"{activity} meets hand-raise {book.model.hand_raises[position].name}"


def _combine(book: Rulebook, rule: ScoringRule, a: RuleTally, b: RuleTally) -> RuleTally:
    latest = max(a, b, key=lambda t: t.latest)
    half_life_s = book.half_life_s(rule)
    if half_life_s is None:
        points = a.points + b.points
    else:
        # Bring both sums to the later reference time: decay multiplies.
        at = latest.latest[0]
        points = sum(
            t.points * 0.5 ** ((at - t.latest[0]).total_seconds() / half_life_s) for t in (a, b)
        )
    return replace(latest, hits=a.hits + b.hits, first=min(a.first, b.first), points=float(points))


def _what(touch: Touch) -> str:
    return f"{touch.activity} via {touch.source}"
