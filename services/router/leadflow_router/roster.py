"""Reps as they stand now: the configuration with run-time overrides and absences applied (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadflow.config import Rep
from leadflow.schedules import Absence, Shift


class RepOverride(BaseModel):
    """Fields of a rep changed at run time; a field set to null goes back to the configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    active: bool | None = None
    max_per_day: int | None = Field(default=None, ge=0)
    max_open: int | None = Field(default=None, ge=0)
    weight: float | None = Field(default=None, gt=0)
    working_hours: list[Shift] | None = None
    languages: list[str] | None = None
    products: list[str] | None = None
    regions: list[str] | None = None

    @field_validator("languages", "products", "regions")
    @classmethod
    def _lowercase(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [v.strip().lower() for v in value]

    @model_validator(mode="after")
    def _something(self) -> RepOverride:
        if not self.model_fields_set:
            raise ValueError(
                "give at least one of active, max_per_day, max_open, weight, working_hours, "
                "languages, products, regions."
            )
        return self


class AbsenceIn(BaseModel):
    """An out-of-office period added at run time."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime
    note: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _ordered(self) -> AbsenceIn:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("give start and end with a time zone, e.g. 2026-12-01T09:00:00Z.")
        if self.end <= self.start:
            raise ValueError("end must be after start.")
        return self


def merge(stored: Mapping[str, Any], change: RepOverride) -> dict[str, Any]:
    """The stored overrides after a change: set fields replace, null fields are dropped."""
    merged = dict(stored)
    for name in change.model_fields_set:
        value = getattr(change, name)
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = change.model_dump(mode="json", include={name})[name]
    return merged


def effective(
    rep: Rep, overrides: Mapping[str, Any], absences: Iterable[tuple[datetime, datetime, str]]
) -> Rep:
    """The rep with stored overrides and run-time absences applied over the configuration."""
    update: dict[str, Any] = {}
    if overrides:
        parsed = RepOverride.model_validate(overrides)
        update = {name: getattr(parsed, name) for name in parsed.model_fields_set}
    extra = [Absence(start=start, end=end, note=note) for start, end, note in absences]
    if extra:
        update["out_of_office"] = [*rep.out_of_office, *extra]
    return rep.model_copy(update=update) if update else rep
