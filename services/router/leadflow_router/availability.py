"""Whether a rep can take a lead now: shift, holidays, absences, skills and caps (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from leadflow.config import Rep
from leadflow.events import Lead
from leadflow.schedules import holiday_calendar

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
    if not rep.active:
        return "inactive"
    zone = ZoneInfo(rep.timezone)
    local = now.astimezone(zone)
    for absence in rep.out_of_office:
        start, end = absence.bounds(zone)
        if start <= now < end:
            back = end.astimezone(zone)
            note = f" ({absence.note})" if absence.note else ""
            return f"out of office until {back:%Y-%m-%d %H:%M} {rep.timezone}{note}"
    if rep.country is not None:
        holiday = holiday_calendar(rep.country, rep.subdivision).get(local.date())
        if holiday:
            return f"public holiday in {rep.country.upper()} ({holiday})"
    if rep.working_hours and not any(shift.covers(local) for shift in rep.working_hours):
        return f"off shift (local time {local:%a %H:%M} {rep.timezone})"
    return None


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
    for skill in skills:
        if skill == "language" and lead.language:
            wanted = _language(lead.language)
            if wanted not in {_language(v) for v in rep.languages}:
                return f"does not speak {wanted!r}"
        elif skill == "product" and lead.product_interest:
            product = lead.product_interest.strip().lower()
            if product not in rep.products:
                return f"does not cover product {product!r}"
        elif skill == "region":
            places = [p.strip().lower() for p in (lead.region, lead.country) if p]
            if places and not set(places) & set(rep.regions):
                return f"does not cover region {'/'.join(places)!r}"
    return None


def cannot_take(
    rep: Rep,
    now: datetime,
    load: RepLoad,
    *,
    lead: Lead,
    skills: Sequence[str] = (),
    excluded: frozenset[str] = frozenset(),
) -> str | None:
    """The reason this rep cannot take this lead now, or None when they can."""
    if rep.id in excluded:
        return MISSED
    return off_duty(rep, now) or skill_gap(rep, skills, lead) or over_capacity(rep, load)


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
