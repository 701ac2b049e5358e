"""Business time: a rep's working hours in their time zone, minus public holidays (pure)."""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from leadflow.config import Rep
from leadflow.schedules import WEEKDAYS, holiday_calendar
from leadflow.schedules import Shift as RosterShift

Shift = tuple[time, time | None]  # end None: until midnight

# A calendar with working time must reach it within this many days (a year of holidays).
SEARCH_DAYS = 400


@dataclass(frozen=True)
class WorkCalendar:
    """When a rep works: shifts per weekday (0 = Monday) in a zone, and days off."""

    zone: ZoneInfo
    shifts: Mapping[int, tuple[Shift, ...]]
    days_off: Container[date] = frozenset()


def calendar_for(rep: Rep) -> WorkCalendar:
    """The rep's calendar: configured shifts (none: always working) and public holidays."""
    return _calendar(
        rep.timezone, tuple(_day_ranges(rep.working_hours)), rep.country, rep.subdivision
    )


def _day_ranges(shifts: list[RosterShift]) -> Iterator[tuple[int, Shift]]:
    """The rep's shifts as (weekday, range) pairs; one past midnight is split in two."""
    if not shifts:
        yield from ((day, (time(0), None)) for day in range(7))
        return
    for shift in shifts:
        for name in shift.days:
            day = WEEKDAYS.index(name)
            if shift.start == shift.end:
                yield day, (time(0), None)
            elif shift.start < shift.end:
                yield day, (shift.start, shift.end)
            else:
                yield day, (shift.start, None)
                if shift.end != time(0):
                    yield (day + 1) % 7, (time(0), shift.end)


@lru_cache(maxsize=1024)
def _calendar(
    zone: str,
    ranges: tuple[tuple[int, Shift], ...],
    country: str | None,
    subdivision: str | None,
) -> WorkCalendar:
    by_day: dict[int, list[Shift]] = {}
    for day, shift in ranges:
        by_day.setdefault(day, []).append(shift)
    shifts = {day: merge_shifts(day_shifts) for day, day_shifts in by_day.items()}
    days_off: Container[date] = frozenset()
    if country is not None:
        days_off = holiday_calendar(country, subdivision)
    return WorkCalendar(ZoneInfo(zone), shifts, days_off)


def merge_shifts(ranges: list[Shift]) -> tuple[Shift, ...]:
    """Shifts in order, overlapping or touching ones joined (so no minute counts twice)."""
    merged: list[Shift] = []
    for start, end in sorted(ranges, key=lambda r: (r[0], r[1] or time.max)):
        if merged:
            last_start, last_end = merged[-1]
            if last_end is None or start <= last_end:
                if last_end is not None and (end is None or end > last_end):
                    merged[-1] = (last_start, end)
                continue
        merged.append((start, end))
    return tuple(merged)


def _shift_bounds(day: date, shift: Shift, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, shift[0], tzinfo=zone).astimezone(UTC)
    if shift[1] is None:
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    else:
        end = datetime.combine(day, shift[1], tzinfo=zone)
    return start, end.astimezone(UTC)


def add_business_time(start: datetime, duration: timedelta, calendar: WorkCalendar) -> datetime:
    """The moment `duration` of working time after `start` has passed, in UTC.

    A lead assigned at 23:00 with a 5-minute window is due 5 minutes after the rep's next
    shift starts; weekends without shifts and holidays are skipped. Differences are taken
    in UTC, so a daylight-saving change inside a shift counts the real elapsed time.
    """
    start = start.astimezone(UTC)
    remaining = duration
    day = start.astimezone(calendar.zone).date()
    for _ in range(SEARCH_DAYS):
        if day not in calendar.days_off:
            for shift in calendar.shifts.get(day.weekday(), ()):
                shift_start, shift_end = _shift_bounds(day, shift, calendar.zone)
                begin = max(shift_start, start)
                if begin >= shift_end:
                    continue
                available = shift_end - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += timedelta(days=1)
    raise ValueError(f"the calendar has no working time in the {SEARCH_DAYS} days after {start}.")


def business_time_between(start: datetime, end: datetime, calendar: WorkCalendar) -> timedelta:
    """How much working time lies between `start` and `end` (zero if `end` is earlier)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    total = timedelta(0)
    day = start.astimezone(calendar.zone).date()
    last = end.astimezone(calendar.zone).date()
    while day <= last:
        if day not in calendar.days_off:
            for shift in calendar.shifts.get(day.weekday(), ()):
                shift_start, shift_end = _shift_bounds(day, shift, calendar.zone)
                begin, finish = max(shift_start, start), min(shift_end, end)
                if finish > begin:
                    total += finish - begin
        day += timedelta(days=1)
    return total
