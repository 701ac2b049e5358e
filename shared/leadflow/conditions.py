"""Conditions on a lead's fields, shared by scoring and routing rules (pure, no IO)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
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
    def _pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.regex) if self.regex is not None else None

    @cached_property
    def _path(self) -> tuple[str, ...]:
        return tuple(self.field.split("."))

    @cached_property
    def _test(self) -> Callable[[Any], bool]:
        """The operator compiled once into a predicate on a present (non-None) value."""
        if self.equals is not None:
            expected = _norm(self.equals)
            return lambda value: bool(_norm(value) == expected)
        if self.not_equals is not None:
            refused = _norm(self.not_equals)
            return lambda value: bool(_norm(value) != refused)
        if self.in_ is not None:
            allowed = [_norm(v) for v in self.in_]
            return lambda value: _norm(value) in allowed
        if self.prefix is not None:
            prefix = self.prefix.lower()
            return lambda value: str(value).lower().startswith(prefix)
        if self._pattern is not None:
            search = self._pattern.search
            return lambda value: search(str(value)) is not None
        bounds = (self.gte, self.gt, self.lte, self.lt)
        return lambda value: _within(value, *bounds)

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """Whether the field of `doc` passes this condition."""
        value = _lookup(doc, self._path)
        if self.exists is not None:
            return (value not in (None, "", [], {})) is self.exists
        if value is None:
            return False
        return self._test(value)


def _norm(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


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
    return _lookup(doc, tuple(path.split(".")))


def _lookup(doc: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    current: Any = doc
    for part in parts:
        # Documents are plain dicts: a dict check is much cheaper than isinstance(Mapping).
        if type(current) is not dict and not isinstance(current, Mapping):
            return None
        current = current.get(part)
        if current is None:
            return None
    return current


def all_match(conditions: list[Condition], doc: Mapping[str, Any]) -> bool:
    """Whether every condition holds (an empty list always holds)."""
    return all(condition.matches(doc) for condition in conditions)
