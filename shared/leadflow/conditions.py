"""Conditions on a lead's fields, shared by scoring and routing rules (pure, no IO)."""

from __future__ import annotations

import re
from collections.abc import Mapping
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

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """Whether the field of `doc` passes this condition."""
        value = lookup(doc, self.field)
        if self.exists is not None:
            return (value not in (None, "", [], {})) is self.exists
        if value is None:
            return False
        if self.equals is not None:
            return bool(_norm(value) == _norm(self.equals))
        if self.not_equals is not None:
            return bool(_norm(value) != _norm(self.not_equals))
        if self.in_ is not None:
            return _norm(value) in {_norm(v) for v in self.in_}
        if self.prefix is not None:
            return str(value).lower().startswith(self.prefix.lower())
        if self._pattern is not None:
            return self._pattern.search(str(value)) is not None
        return _within(value, self.gte, self.gt, self.lte, self.lt)


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
    current: Any = doc
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def all_match(conditions: list[Condition], doc: Mapping[str, Any]) -> bool:
    """Whether every condition holds (an empty list always holds)."""
    return all(condition.matches(doc) for condition in conditions)
