"""Scoring rules that no configured source can trigger, for `leadflow config check`.

A rule's conditions on the touch narrow the sources whose events could meet it:
* `activity` (equals, in): a source sends one activity — its `activity`, else its kind's
  (`leadflow.source_kinds`) — unless its payload names the activity (kind standard,
  Marketo's template field, or any source mapping a field to `activity`);
* `answers.<question>`: IVR answers come from the sources that ask the question (a twilio
  source's `questions`, or a mapping to `answers.<question>`); a question whose `answers`
  map keys and phrases gives those values, one without such a map gives any text;
* `source` (equals, in): the sources it names.
A condition on the person (`lead.answers.<question>`) needs some source, on any touch, to
give one of its values. A standard body could carry answers of its own, but nothing in the
configuration says which: answers are taken to be the configured questions'. What this
catches is a rule waiting for an activity or answers only a hand-written body would send.

Fit rules test the profile only (`lead.*`, `facts.*`): a fit rule testing the touch
(`activity`, `answers.*`, ...) never fires.

These are warnings, not errors: the configuration still loads and runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from leadflow.conditions import Condition
from leadflow.config import LeadflowConfig, Source
from leadflow.source_kinds import DEFAULT_ACTIVITY, PAYLOAD_NAMES_ACTIVITY

Loc = tuple[str | int, ...]
_PROFILE_ROOTS = ("lead", "facts")


@dataclass(frozen=True)
class ConfigWarning:
    """Something in the configuration that cannot work as written, and where it is."""

    loc: Loc
    message: str


@dataclass(frozen=True)
class Emits:
    """What the events of one source can carry."""

    name: str
    kind: str
    # None: any activity (the payload names it).
    activities: frozenset[str] | None
    # Question -> the values its answers take (None: any text).
    answers: Mapping[str, frozenset[str] | None]

    def sends(self, activities: frozenset[str]) -> bool:
        """Whether this source's events can carry one of `activities`."""
        return self.activities is None or bool(self.activities & activities)

    def gives(self, question: str, values: frozenset[Any] | None) -> bool:
        """Whether this source's events can answer `question` with one of `values`."""
        if question not in self.answers:
            return False
        given = self.answers[question]
        return values is None or given is None or bool(given & values)


def emits(name: str, source: Source) -> Emits:
    """What the events of `source` can carry, by its kind and configuration."""
    mapped = source.mapping.get("activity")
    if source.kind == "standard":
        named_by_payload = True
    elif source.kind in PAYLOAD_NAMES_ACTIVITY:
        named_by_payload = mapped != ""
    else:
        named_by_payload = bool(mapped)
    activities = (
        None if named_by_payload else frozenset({source.activity or DEFAULT_ACTIVITY[source.kind]})
    )
    answers: dict[str, frozenset[str] | None] = {
        question_name: frozenset(_norm(v) for v in question.answers.values())
        if question.answers
        else None
        for question_name, question in source.questions.items()
    }
    for target, path in source.mapping.items():
        if target.startswith("answers.") and path:
            answers[target.split(".", 1)[1]] = None
    return Emits(name, source.kind, activities, answers)


def unreachable_rules(config: LeadflowConfig) -> list[ConfigWarning]:
    """Warnings for scoring rules, hand-raises and hand-raise activities that no configured
    source can trigger, each naming the rule and the sources."""
    sources = [emits(name, source) for name, source in config.sources.items()]
    scoring = config.scoring
    warnings: list[ConfigWarning] = []
    for i, rule in enumerate(scoring.rules):
        loc: Loc = ("scoring", "rules", i)
        what = f"{rule.group} rule {rule.name!r}"
        if rule.group == "fit":
            warnings += _touch_in_fit_rule(what, loc, rule.when)
        warnings += _rule_warnings(what, loc, rule.when, sources)
    for i, hand_raise in enumerate(scoring.hand_raises):
        loc = ("scoring", "hand_raises", i)
        warnings += _rule_warnings(f"hand-raise {hand_raise.name!r}", loc, hand_raise.when, sources)
    lists: list[tuple[Loc, list[str]]] = [
        (("scoring", "hand_raise_activities"), scoring.hand_raise_activities)
    ]
    lists += [
        (("scoring", "campaigns", name, "hand_raise_activities"), campaign.hand_raise_activities)
        for name, campaign in scoring.campaigns.items()
        if campaign.hand_raise_activities is not None
    ]
    for loc, activities in lists:
        for j, activity in enumerate(activities):
            if not any(s.sends(frozenset({_norm(activity)})) for s in sources):
                warnings.append(
                    ConfigWarning(
                        (*loc, j),
                        f"hand-raise activity {activity!r} is never sent: "
                        f"{_activities_of(sources)}.",
                    )
                )
    return warnings


def _touch_in_fit_rule(what: str, loc: Loc, when: Sequence[Condition]) -> list[ConfigWarning]:
    return [
        ConfigWarning(
            (*loc, "when", j),
            f"{what} tests {c.field!r}, but fit rules see only the profile (lead.*, facts.*): "
            "it never fires; make it an engagement rule to test the touch.",
        )
        for j, c in enumerate(when)
        if c.path[0] not in _PROFILE_ROOTS and c.exists is not False
    ]


def _rule_warnings(
    what: str, loc: Loc, when: Sequence[Condition], sources: Sequence[Emits]
) -> list[ConfigWarning]:
    """What makes one rule impossible: each condition no source meets, and, among the
    others, conditions on the touch that no one source meets together."""
    warnings: list[ConfigWarning] = []
    touch_tests: list[_Test] = []
    for j, c in enumerate(when):
        problem, test = _condition(what, c, sources)
        if problem is not None:
            warnings.append(ConfigWarning((*loc, "when", j), problem))
        elif test is not None:
            touch_tests.append(test)
    if touch_tests and not any(all(_meets(s, t) for t in touch_tests) for s in sources):
        warnings.append(ConfigWarning(loc, _no_single_source(what, touch_tests, sources)))
    return warnings


# A condition on the touch as a test of a source: ("source", names), ("activity",
# activities) or ("answers", (question, values or None)).
_Test = tuple[str, Any]


def _condition(
    what: str, c: Condition, sources: Sequence[Emits]
) -> tuple[str | None, _Test | None]:
    """Why no source can meet condition `c` (None when some can), and its test of a source
    when it is a condition on the touch that narrows the sources."""
    root = c.path[0]
    values = _accepted(c)
    if c.field == "source" and values is not None:
        if not any(s.name in values for s in sources):
            return (
                f"{what} names source {_listed(values)}, which is not configured "
                f"(the sources are {_listed(s.name for s in sources)}).",
                None,
            )
        return None, ("source", values)
    if c.field == "activity" and values is not None:
        if not any(s.sends(values) for s in sources):
            problem = (
                f"{what} waits for activity {_listed(values)}, which is never sent: "
                f"{_activities_of(sources)}."
            )
            return problem, None
        return None, ("activity", values)
    on_person = root == "lead" and len(c.path) == 3 and c.path[1] == "answers"
    on_touch = root == "answers" and len(c.path) == 2
    if not (on_person or on_touch) or c.exists is False:
        return None, None
    question = c.path[-1]
    askers = [s for s in sources if question in s.answers]
    if not askers:
        problem = (
            f"{what} tests {c.field}, but no source asks question {question!r} "
            f"(a twilio source's questions, or a mapping to answers.{question})."
        )
        return problem, None
    if values is not None and not any(s.gives(question, values) for s in askers):
        maps = "; ".join(
            f"source {s.name!r} maps question {question!r} to "
            f"{', '.join(sorted(s.answers[question] or ()))}"
            for s in askers
        )
        return (
            f"{what} waits for {c.field} {_listed(values)}, which no question maps to: {maps}.",
            None,
        )
    return None, ("answers", (question, values)) if on_touch else None


def _meets(source: Emits, test: _Test) -> bool:
    kind, wanted = test
    if kind == "source":
        return source.name in wanted
    if kind == "activity":
        return source.sends(wanted)
    question, values = wanted
    return source.gives(question, values)


def _no_single_source(what: str, touch_tests: Sequence[_Test], sources: Sequence[Emits]) -> str:
    """Why no one source meets every condition on the touch (each alone is met by some)."""
    activities = [t[1] for t in touch_tests if t[0] == "activity"]
    others = [t for t in touch_tests if t[0] != "activity"]
    fitting = [s for s in sources if all(_meets(s, t) for t in others)]
    if not fitting:
        fields = ", ".join(
            f"answers.{t[1][0]}" if t[0] == "answers" else f"source {_listed(t[1])}" for t in others
        )
        return f"{what} can never be met: no one source gives all of {fields}."
    wanted = frozenset().union(*activities)
    needs = ", ".join(f"answers.{t[1][0]}" for t in others if t[0] == "answers")
    narrowed = f"its answers ({needs}) come only from" if needs else "it applies only to"
    named = "source" if len(fitting) == 1 else "sources"
    sends = "; ".join(f"{s.name!r} ({s.kind}) sends {_listed(s.activities or ())}" for s in fitting)
    return (
        f"{what} can never be met: {narrowed} {named} {_listed(s.name for s in fitting)}, "
        f"never with activity {_listed(wanted)}: {sends}."
    )


def _accepted(c: Condition) -> frozenset[Any] | None:
    """The values an `equals` or `in` condition accepts (None: it is not one of those)."""
    if c.equals is not None:
        return frozenset({_norm(c.equals)})
    if c.in_ is not None:
        return frozenset(_norm(v) for v in c.in_)
    return None


def _norm(value: Any) -> Any:
    # As conditions compare: text without case or surrounding space; other values as they are.
    return value.strip().lower() if isinstance(value, str) else value


def _listed(values: Any) -> str:
    shown = sorted((repr(v) for v in values), key=str)
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def _activities_of(sources: Sequence[Emits]) -> str:
    fixed = [s for s in sources if s.activities is not None]
    parts = [f"{s.name!r} sends {_listed(s.activities or ())}" for s in fixed]
    if not parts:
        return "no source is configured"
    return "; ".join(parts)
