"""Calendars for routing: weekly shifts, time windows in a zone, absences and holidays (pure)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def known_zone(value: str) -> str:
    """`value` if it names an IANA time zone; a readable error otherwise."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Lisbon).") from exc
    return value


@cache
def holiday_calendar(country: str, subdivision: str | None = None) -> holidays.HolidayBase:
    """The public holidays of a country (ISO 3166 code) and optional subdivision."""
    try:
        return holidays.country_holidays(country.upper(), subdiv=subdivision)
    except NotImplementedError as exc:
        raise ValueError(
            f"no holiday calendar for country {country!r}"
            + (f" subdivision {subdivision!r}" if subdivision else "")
            + "; use an ISO 3166 code the `holidays` package knows (e.g. PT, US, DE)."
        ) from exc


def normalize_domain(value: str) -> str:
    """A domain in the form accounts are matched on: lowercase, no scheme, no `www.`."""
    domain = value.strip().lower()
    domain = domain.split("://", 1)[-1].split("/", 1)[0].rstrip(".")
    return domain.removeprefix("www.")


def _expand_days(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    days: list[str] = []
    for item in value:
        text = str(item).strip().lower()
        first, sep, last = text.partition("-")
        if first not in WEEKDAYS or (sep and last not in WEEKDAYS):
            raise ValueError(f"{item!r} is not a weekday or range; write e.g. mon, sat or mon-fri.")
        if not sep:
            days.append(first)
            continue
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last)
        days.extend(WEEKDAYS[(start + i) % 7] for i in range((end - start) % 7 + 1))
    return days


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_ALL_DAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _any_case(word: str) -> str:
    return "".join(f"[{c}{c.upper()}]" for c in word)


# The schema describes what a file may say (`mon-fri`, `Sat`), not the expanded list.
_DAY = "(" + "|".join(_any_case(day) for day in WEEKDAYS) + ")"
Days = Annotated[
    list[Weekday],
    BeforeValidator(_expand_days),
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string", "pattern": rf"^\s*{_DAY}(-{_DAY})?\s*$"},
            "description": "Weekdays or ranges of them, e.g. [mon-fri] or [sat, sun].",
        }
    ),
]


def _clock_text(value: Any) -> Any:
    # Unquoted, YAML 1.1 reads 17:30 as the base-60 number 1050, which pydantic would take
    # for 1,050 seconds after midnight: refused rather than a shift ending at 00:17:30.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f'write times of day in quotes, e.g. "17:30": unquoted, YAML reads a time such '
            f"as 17:30 as a number ({value})."
        )
    return value


# A wall-clock time as written in a file: "09:00", quoted (see `_clock_text`).
ClockTime = Annotated[
    time,
    BeforeValidator(_clock_text),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?$",
            "description": 'A time of day, e.g. "09:00" or "17:30".',
        }
    ),
]


class Shift(_Model):
    """Hours on some weekdays, e.g. `{days: [mon-fri], start: "09:00", end: "17:30"}`.

    An end before the start runs past midnight (the shift belongs to the day it starts);
    an end equal to the start means the whole day.
    """

    days: Days = Field(default_factory=lambda: list(_ALL_DAYS))
    start: ClockTime
    end: ClockTime

    def covers(self, local: datetime) -> bool:
        """Whether a local wall-clock moment falls inside this shift."""
        clock, day = local.time().replace(tzinfo=None), WEEKDAYS[local.weekday()]
        if self.start == self.end:
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= clock < self.end
        yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
        return (day in self.days and clock >= self.start) or (
            yesterday in self.days and clock < self.end
        )


class TimeWindow(Shift):
    """A shift in a given time zone, for time-of-day and weekday routing conditions."""

    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    def contains(self, moment: datetime) -> bool:
        """Whether an aware instant falls inside the window in its zone."""
        return self.covers(moment.astimezone(ZoneInfo(self.timezone)))


class Absence(_Model):
    """An out-of-office period: whole days (in the rep's zone, end included) or instants."""

    start: AwareDatetime | date
    end: AwareDatetime | date
    note: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Absence:
        if type(self.start) is not type(self.end):
            raise ValueError("give start and end both as dates or both as date-times.")
        if self.end < self.start:
            raise ValueError("an absence must end after it starts.")
        return self

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The absence as a half-open interval of aware instants."""
        if isinstance(self.start, datetime) and isinstance(self.end, datetime):
            return self.start, self.end
        first = datetime.combine(self.start, time(), zone)
        last = datetime.combine(self.end + timedelta(days=1), time(), zone)
        return first, last
