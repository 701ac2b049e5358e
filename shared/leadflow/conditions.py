"""Conditions on a lead's fields, shared by scoring and routing rules (pure, no IO)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

_OPERATORS = ("equals", "not_equals", "in_", "prefix", "regex", "gte", "gt", "lte", "lt", "exists")


class Condition(BaseModel):
    """One test on one field, e.g. `{field: company.size, gte: 500}`.

    `field` is a dotted path into the document being tested (the lead, its score and
    the time of the decision). Exactly one operator must be given.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    field: str = Field(min_length=1)
    equals: Any = None
    not_equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    prefix: str | None = None
    regex: str | None = None
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [op for op in _OPERATORS if getattr(self, op) is not None]
        numeric = {"gte", "gt", "lte", "lt"}
        if not given:
            raise ValueError(
                f"condition on {self.field!r} needs an operator: one of "
                "equals, not_equals, in, prefix, regex, gte, gt, lte, lt, exists."
            )
        if len(given) > 1 and not set(given) <= numeric:
            raise ValueError(
                f"condition on {self.field!r} has several operators "
                f"({', '.join(op.rstrip('_') for op in given)}); "
                "only numeric bounds (gte/gt/lte/lt) can be combined."
            )
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}.") from exc
        return self

    @cached_property
    def path(self) -> tuple[str, ...]:
        """The field's dotted path, split into its steps."""
        return tuple(self.field.split("."))

    @cached_property
    def on_value(self) -> Callable[[Any], bool]:
        """The condition compiled once into a test of the field's value (None when missing)."""
        return _value_test(self)

    @cached_property
    def check(self) -> Callable[[Mapping[str, Any]], bool]:
        """The condition compiled once into a test of a whole document (what `matches` does)."""
        test = self.on_value
        parts = self.path
        # Documents are plain dicts: the steps are unrolled for them, anything else takes
        # the general lookup (rules read at most three steps deep).
        if len(parts) == 1:
            (key,) = parts

            def one_step(doc: Mapping[str, Any]) -> bool:
                if type(doc) is dict:
                    return test(doc.get(key))
                return test(lookup_path(doc, parts))

            return one_step
        if len(parts) == 2:
            first, second = parts

            def two_steps(doc: Mapping[str, Any]) -> bool:
                inner = doc.get(first) if type(doc) is dict else None
                if type(inner) is dict:
                    return test(inner.get(second))
                return test(lookup_path(doc, parts))

            return two_steps
        if len(parts) == 3:
            first, second, third = parts

            def three_steps(doc: Mapping[str, Any]) -> bool:
                inner = doc.get(first) if type(doc) is dict else None
                if type(inner) is dict:
                    inner = inner.get(second)
                    if type(inner) is dict:
                        return test(inner.get(third))
                return test(lookup_path(doc, parts))

            return three_steps
        return lambda doc: test(lookup_path(doc, parts))

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """Whether the field of `doc` passes this condition."""
        return self.check(doc)


def _norm(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# What `exists` counts as absent.
_EMPTY: tuple[Any, ...] = (None, "", [], {})


def _value_test(c: Condition) -> Callable[[Any], bool]:
    """The operator of `c` as a test of a looked-up value; text comparisons specialised,
    since nearly every rule compares text and this runs for every rule of every decision."""
    if c.exists is not None:
        wanted = c.exists
        return lambda value: (value not in _EMPTY) is wanted
    if c.equals is not None:
        return _equals(_norm(c.equals), negate=False)
    if c.not_equals is not None:
        return _equals(_norm(c.not_equals), negate=True)
    if c.in_ is not None:
        return _among([_norm(v) for v in c.in_])
    if c.prefix is not None:
        prefix = c.prefix.lower()

        def starts(value: Any) -> bool:
            if isinstance(value, str):
                return value.lower().startswith(prefix)
            return value is not None and str(value).lower().startswith(prefix)

        return starts
    if c.regex is not None:
        search = re.compile(c.regex).search

        def found(value: Any) -> bool:
            if isinstance(value, str):
                return search(value) is not None
            return value is not None and search(str(value)) is not None

        return found
    return _bounds(c.gte, c.gt, c.lte, c.lt)


def _equals(expected: Any, *, negate: bool) -> Callable[[Any], bool]:
    if isinstance(expected, str):

        def same_text(value: Any) -> bool:
            if isinstance(value, str):
                return (value.strip().lower() == expected) is not negate
            return value is not None and bool(value == expected) is not negate

        return same_text
    if negate:
        return lambda value: value is not None and bool(_norm(value) != expected)
    return lambda value: value is not None and bool(_norm(value) == expected)


def _among(allowed: list[Any]) -> Callable[[Any], bool]:
    if all(isinstance(v, str) for v in allowed):
        texts = frozenset(allowed)

        def among_texts(value: Any) -> bool:
            if isinstance(value, str):
                return value.strip().lower() in texts
            return value is not None and value in allowed

        return among_texts
    return lambda value: value is not None and _norm(value) in allowed


def _bounds(
    gte: float | None, gt: float | None, lte: float | None, lt: float | None
) -> Callable[[Any], bool]:
    if gte is not None and gt is None and lte is None and lt is None:
        floor = gte

        def at_least(value: Any) -> bool:
            if value is None:
                return False
            try:
                return float(value) >= floor
            except (TypeError, ValueError):
                return False

        return at_least
    return lambda value: value is not None and _within(value, gte, gt, lte, lt)


def _within(
    value: Any, gte: float | None, gt: float | None, lte: float | None, lt: float | None
) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return (
        (gte is None or number >= gte)
        and (gt is None or number > gt)
        and (lte is None or number <= lte)
        and (lt is None or number < lt)
    )


def lookup(doc: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of nested mappings, or None when any step is missing."""
    return lookup_path(doc, tuple(path.split(".")))


def lookup_path(doc: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    """`lookup` of a path already split into its steps (see `Condition.path`)."""
    current: Any = doc
    for part in parts:
        # Documents are plain dicts: a dict check is much cheaper than isinstance(Mapping).
        if type(current) is not dict and not isinstance(current, Mapping):
            return None
        current = current.get(part)
        if current is None:
            return None
    return current


def all_match(conditions: Sequence[Condition], doc: Mapping[str, Any]) -> bool:
    """Whether every condition holds (an empty list always holds)."""
    # A plain loop: all() over a generator costs about a third more per rule.
    for condition in conditions:  # noqa: SIM110
        if not condition.check(doc):
            return False
    return True


def conjunction(conditions: Sequence[Condition]) -> Callable[[Mapping[str, Any]], bool]:
    """`all_match` over `conditions` compiled into one test (build it once, call it often)."""
    checks = tuple(condition.check for condition in conditions)
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda doc: first(doc) and second(doc)

    def every(doc: Mapping[str, Any]) -> bool:
        for check in checks:  # noqa: SIM110 (as in all_match)
            if not check(doc):
                return False
        return True

    return every


def _always(doc: Mapping[str, Any]) -> bool:
    return True
