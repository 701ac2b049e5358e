"""Whether a rep can take a lead now: shift, holidays, absences, skills and caps (pure).

What does not change from one decision to the next is worked out once per rep object (its
zone, absences, shifts laid out per weekday, skills as sets) and once per day (holidays).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from leadflow.config import Rep
from leadflow.events import Lead
from leadflow.schedules import WEEKDAYS, Shift, holiday_calendar

MISSED = "already missed this lead's follow-up"


@dataclass(frozen=True)
class RepLoad:
    """How much a rep already has: leads assigned today (their local day) and still open."""

    today: int = 0
    open: int = 0


def local_day_start(rep: Rep, now: datetime) -> datetime:
    """The start of the rep's current day, in their time zone (what daily caps count from)."""
    zone = ZoneInfo(rep.timezone)
    return datetime.combine(now.astimezone(zone).date(), time(), zone)


def off_duty(rep: Rep, now: datetime) -> str | None:
    """Why the rep is not working at `now` (inactive, away, holiday, off shift), or None."""
    return _calendar(rep).off_duty(now)


# A stretch of one weekday's wall clock: from (inclusive) and until (exclusive, None: midnight).
_Stretch = tuple[time, time | None]


@dataclass(frozen=True, slots=True)
class _Calendar:
    """What availability reads of one rep, worked out once: zone, absences, shifts, skills."""

    rep: Rep
    zone: ZoneInfo
    absences: tuple[tuple[datetime, datetime, str], ...]
    # Per weekday (Monday first), the stretches the rep's shifts cover; None: always on shift.
    shifts: tuple[tuple[_Stretch, ...], ...] | None
    # The public holidays of the rep's country by local date, as far as looked up (shared).
    holidays: dict[date, str | None] | None
    languages: frozenset[str]
    products: frozenset[str]
    regions: frozenset[str]

    def off_duty(self, now: datetime, local: datetime | None = None) -> str | None:
        """`off_duty` of the rep (`local`: `now` in the rep's zone, when already known)."""
        rep = self.rep
        if not rep.active:
            return "inactive"
        zone = self.zone
        if local is None:
            local = now.astimezone(zone)
        for start, end, note in self.absences:
            if start <= now < end:
                back = end.astimezone(zone)
                said = f" ({note})" if note else ""
                return f"out of office until {back:%Y-%m-%d %H:%M} {rep.timezone}{said}"
        if self.holidays is not None:
            day = local.date()
            try:
                holiday = self.holidays[day]
            except KeyError:
                holiday = self.holidays[day] = _holiday(rep, day)
            if holiday:
                return f"public holiday in {str(rep.country).upper()} ({holiday})"
        if self.shifts is not None:
            clock = local.time()
            for since, until in self.shifts[local.weekday()]:
                if since <= clock and (until is None or clock < until):
                    return None
            return f"off shift (local time {local:%a %H:%M} {rep.timezone})"
        return None

    def skill_gap(self, skills: Sequence[str], needs: Needs) -> str | None:
        """`skill_gap` of the rep."""
        for skill in skills:
            if skill == "language" and needs.language is not None:
                if needs.language not in self.languages:
                    return f"does not speak {needs.language!r}"
            elif skill == "product" and needs.product is not None:
                if needs.product not in self.products:
                    return f"does not cover product {needs.product!r}"
            elif skill == "region" and needs.places and self.regions.isdisjoint(needs.places):
                return f"does not cover region {'/'.join(needs.places)!r}"
        return None


@dataclass(frozen=True, slots=True)
class Needs:
    """What a lead asks of a rep's skills, normalised once (None: the lead does not say)."""

    language: str | None
    product: str | None
    places: tuple[str, ...]


def needs(lead: Lead) -> Needs:
    """The lead's language, product interest and places, as skills are compared."""
    return Needs(
        language=_language(lead.language) if lead.language else None,
        product=lead.product_interest.strip().lower() if lead.product_interest else None,
        places=tuple(p.strip().lower() for p in (lead.region, lead.country) if p),
    )


_CALENDARS: dict[int, _Calendar] = {}


def _calendar(rep: Rep) -> _Calendar:
    """The rep's calendar, memoised per rep object: an override or an absence added at run
    time makes a new rep object (`roster.effective`), so it is never answered from a stale one."""
    cached = _CALENDARS.get(id(rep))
    if cached is not None and cached.rep is rep:
        return cached
    zone = ZoneInfo(rep.timezone)
    calendar = _Calendar(
        rep=rep,
        zone=zone,
        absences=tuple((*a.bounds(zone), a.note) for a in rep.out_of_office),
        shifts=_weekly(rep.working_hours) if rep.working_hours else None,
        holidays=_holidays(rep),
        languages=frozenset(_language(v) for v in rep.languages),
        products=frozenset(rep.products),
        regions=frozenset(rep.regions),
    )
    if len(_CALENDARS) >= 4096:
        _CALENDARS.clear()
    # The entry keeps the rep alive, so its id cannot be reused by another while cached.
    _CALENDARS[id(rep)] = calendar
    return calendar


def _weekly(shifts: Sequence[Shift]) -> tuple[tuple[_Stretch, ...], ...]:
    """`Shift.covers` of every shift, laid out per weekday of the wall clock."""
    week: list[list[_Stretch]] = [[] for _ in WEEKDAYS]
    for shift in shifts:
        for day, name in enumerate(WEEKDAYS):
            yesterday = WEEKDAYS[(day - 1) % 7]
            if shift.start == shift.end:
                if name in shift.days:
                    week[day].append((time.min, None))
            elif shift.start < shift.end:
                if name in shift.days:
                    week[day].append((shift.start, shift.end))
            else:  # past midnight: the evening on its own day, the morning on the next
                if name in shift.days:
                    week[day].append((shift.start, None))
                if yesterday in shift.days:
                    week[day].append((time.min, shift.end))
    return tuple(tuple(stretches) for stretches in week)


# Per country and subdivision, the holiday (or None) of each local date looked up so far.
_HOLIDAYS: dict[tuple[str, str | None], dict[date, str | None]] = {}


def _holidays(rep: Rep) -> dict[date, str | None] | None:
    if rep.country is None:
        return None
    return _HOLIDAYS.setdefault((rep.country, rep.subdivision), {})


def _holiday(rep: Rep, day: date) -> str | None:
    assert rep.country is not None
    found: str | None = holiday_calendar(rep.country, rep.subdivision).get(day)
    return found


def over_capacity(rep: Rep, load: RepLoad) -> str | None:
    """Why the rep cannot take one more lead (a cap is reached), or None."""
    if rep.max_per_day is not None and load.today >= rep.max_per_day:
        return f"daily cap reached ({load.today}/{rep.max_per_day} today)"
    if rep.max_open is not None and load.open >= rep.max_open:
        return f"open-lead cap reached ({load.open}/{rep.max_open} open)"
    return None


def _language(value: str) -> str:
    return value.strip().lower().replace("_", "-").split("-")[0]


def skill_gap(rep: Rep, skills: Sequence[str], lead: Lead) -> str | None:
    """The first skill the lead needs that the rep lacks (unknown lead attributes need nothing)."""
    return _calendar(rep).skill_gap(skills, needs(lead)) if skills else None


class Occasion:
    """One decision's instant and lead, with what every rep's answer shares worked out once:
    the instant on each zone's wall clock (reps mostly share a few zones), the lead's needs."""

    __slots__ = ("_local", "_needs", "lead", "now")

    def __init__(self, now: datetime, lead: Lead) -> None:
        self.now = now
        self.lead = lead
        self._local: dict[ZoneInfo, datetime] = {}
        self._needs: Needs | None = None

    def local(self, zone: ZoneInfo) -> datetime:
        """The instant on the zone's wall clock."""
        try:
            return self._local[zone]
        except KeyError:
            local = self._local[zone] = self.now.astimezone(zone)
            return local

    def needs(self) -> Needs:
        """`needs` of the lead."""
        if self._needs is None:
            self._needs = needs(self.lead)
        return self._needs


def cannot_take(
    rep: Rep,
    now: datetime,
    load: RepLoad,
    *,
    lead: Lead,
    skills: Sequence[str] = (),
    excluded: frozenset[str] = frozenset(),
    occasion: Occasion | None = None,
) -> str | None:
    """The reason this rep cannot take this lead now, or None when they can.

    `occasion` (of `now` and `lead`) shares work between the reps of one decision.
    """
    if rep.id in excluded:
        return MISSED
    calendar = _calendar(rep)
    if occasion is None:
        occasion = Occasion(now, lead)
    return (
        calendar.off_duty(now, occasion.local(calendar.zone))
        or (calendar.skill_gap(skills, occasion.needs()) if skills else None)
        or over_capacity(rep, load)
    )


_KINDS = (
    (MISSED, "missed"),
    ("inactive", "inactive"),
    ("out of office", "out_of_office"),
    ("public holiday", "holiday"),
    ("off shift", "off_shift"),
    ("does not", "skill"),
    ("daily cap", "daily_cap"),
    ("open-lead cap", "open_cap"),
)


def skip_kind(reason: str) -> str:
    """A bounded label for a skip reason (for metrics)."""
    return next((kind for prefix, kind in _KINDS if reason.startswith(prefix)), "other")
