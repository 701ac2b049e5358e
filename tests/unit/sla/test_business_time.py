"""Business time: working hours in the rep's zone, weekends, holidays, DST, split shifts."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from leadflow.config import Rep
from leadflow_sla.business_time import (
    WorkCalendar,
    add_business_time,
    business_time_between,
    calendar_for,
    merge_shifts,
)

LISBON = ZoneInfo("Europe/Lisbon")
NEW_YORK = ZoneInfo("America/New_York")


def lisbon(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LISBON)


def rep(**fields: object) -> Rep:
    return Rep.model_validate({"id": "ana", "name": "Ana", "email": "a@x.example", **fields})


NINE_TO_FIVE = [{"days": ["mon-fri"], "start": "09:00", "end": "17:00"}]
ANA = calendar_for(rep(timezone="Europe/Lisbon", country="PT", working_hours=NINE_TO_FIVE))


@pytest.mark.parametrize(
    ("start", "window", "due"),
    [
        # Inside the shift: plain addition.
        (lisbon(2026, 11, 26, 10, 0), timedelta(minutes=30), lisbon(2026, 11, 26, 10, 30)),
        # At 23:00 a 5-minute window is due 5 minutes after the next shift starts.
        (lisbon(2026, 11, 25, 23, 0), timedelta(minutes=5), lisbon(2026, 11, 26, 9, 5)),
        # Before the shift starts.
        (lisbon(2026, 11, 26, 7, 0), timedelta(hours=1), lisbon(2026, 11, 26, 10, 0)),
        # Crossing the end of the day: 30 min today, 30 min tomorrow.
        (lisbon(2026, 11, 26, 16, 30), timedelta(hours=1), lisbon(2026, 11, 27, 9, 30)),
        # Friday evening: due on Monday.
        (lisbon(2026, 11, 27, 18, 0), timedelta(minutes=5), lisbon(2026, 11, 30, 9, 5)),
        # Several days of work: 20 h at 8 h a day from Thursday 09:00 is Monday 13:00.
        (lisbon(2026, 11, 26, 9, 0), timedelta(hours=20), lisbon(2026, 11, 30, 13, 0)),
        # Christmas (Friday) is a Portuguese holiday: due on Monday the 28th.
        (lisbon(2026, 12, 24, 16, 59), timedelta(minutes=2), lisbon(2026, 12, 28, 9, 1)),
        # Exactly at the end of the window's time: the shift's last minute counts.
        (lisbon(2026, 11, 26, 16, 0), timedelta(hours=1), lisbon(2026, 11, 26, 17, 0)),
    ],
)
def test_add_business_time(start: datetime, window: timedelta, due: datetime) -> None:
    assert add_business_time(start, window, ANA) == due
    assert add_business_time(start, window, ANA).tzinfo == UTC


def test_the_rep_time_zone_decides_not_the_server() -> None:
    ben = calendar_for(rep(timezone="America/New_York", working_hours=NINE_TO_FIVE))
    # 13:00 UTC is 08:00 in New York (EST, UTC-5): the rep's day starts an hour later.
    start = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)

    due = add_business_time(start, timedelta(minutes=5), ben)

    assert due == datetime(2026, 11, 26, 9, 5, tzinfo=NEW_YORK)


def test_split_shifts_skip_the_lunch_break() -> None:
    cal = calendar_for(
        rep(
            timezone="Europe/Lisbon",
            working_hours=[
                {"days": ["thu"], "start": "09:00", "end": "12:00"},
                {"days": ["thu"], "start": "13:00", "end": "17:00"},
            ],
        )
    )

    due = add_business_time(lisbon(2026, 11, 26, 11, 50), timedelta(minutes=20), cal)

    assert due == lisbon(2026, 11, 26, 13, 10)


def test_a_shift_until_midnight_and_only_on_configured_days() -> None:
    cal = calendar_for(
        rep(
            timezone="Europe/Lisbon",
            working_hours=[{"days": ["sat"], "start": "20:00", "end": "00:00"}],
        )
    )

    # Thursday: the next working time is Saturday 20:00; 4 h fill Saturday, then next Saturday.
    due = add_business_time(lisbon(2026, 11, 26, 12, 0), timedelta(hours=5), cal)

    assert due == lisbon(2026, 12, 5, 21, 0)


def test_a_daylight_saving_change_inside_a_shift_counts_real_time() -> None:
    # Lisbon springs forward at 01:00 UTC on 2026-03-29 (a Sunday): that day has 23 hours.
    cal = calendar_for(
        rep(
            timezone="Europe/Lisbon",
            working_hours=[{"days": ["sun"], "start": "00:00", "end": "00:00"}],
        )
    )

    due = add_business_time(lisbon(2026, 3, 29, 0, 0), timedelta(hours=3), cal)

    assert due == datetime(2026, 3, 29, 3, 0, tzinfo=UTC)
    assert due.astimezone(LISBON).hour == 4


def test_without_working_hours_reps_are_always_working() -> None:
    cal = calendar_for(rep())

    assert cal.zone == ZoneInfo("UTC")
    assert cal.shifts == {day: ((time(0), None),) for day in range(7)}


def test_a_calendar_without_working_time_is_refused_not_looped() -> None:
    never = WorkCalendar(LISBON, {})

    with pytest.raises(ValueError, match="no working time"):
        add_business_time(lisbon(2026, 11, 26, 9, 0), timedelta(minutes=1), never)


def test_holidays_by_country() -> None:
    assert date(2026, 12, 25) in ANA.days_off
    assert date(2026, 11, 26) not in ANA.days_off
    # Thanksgiving is a US holiday, not a Portuguese one.
    assert date(2026, 11, 26) in calendar_for(rep(country="US")).days_off


@pytest.mark.parametrize(
    ("ranges", "merged"),
    [
        ([(time(13), time(17)), (time(9), time(12))], ((time(9), time(12)), (time(13), time(17)))),
        ([(time(9), time(12)), (time(11), time(14))], ((time(9), time(14)),)),
        ([(time(9), time(12)), (time(12), time(13))], ((time(9), time(13)),)),
        ([(time(9), time(17)), (time(10), time(11))], ((time(9), time(17)),)),
        ([(time(20), None), (time(22), time(23))], ((time(20), None),)),
        ([(time(9), time(12)), (time(10), None)], ((time(9), None),)),
    ],
)
def test_merge_shifts(
    ranges: list[tuple[time, time | None]], merged: tuple[tuple[time, time | None], ...]
) -> None:
    assert merge_shifts(ranges) == merged


def test_business_time_between() -> None:
    # Thursday 16:00 to Monday 10:00: 1 h Thursday, 8 h Friday, 1 h Monday.
    assert business_time_between(
        lisbon(2026, 11, 26, 16, 0), lisbon(2026, 11, 30, 10, 0), ANA
    ) == timedelta(hours=10)
    assert business_time_between(
        lisbon(2026, 11, 30, 10, 0), lisbon(2026, 11, 26, 16, 0), ANA
    ) == timedelta(0)
