"""Availability: shifts in the rep's zone, holidays, absences, skills and caps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from leadflow.config import Rep
from leadflow.events import Lead
from leadflow_router.availability import (
    MISSED,
    RepLoad,
    cannot_take,
    local_day_start,
    off_duty,
    over_capacity,
    skill_gap,
    skip_kind,
)


def rep(**fields: Any) -> Rep:
    """A rep in Lisbon, with extra fields."""
    return Rep.model_validate(
        {"id": "ana", "name": "Ana", "email": "ana@example.com", "timezone": "Europe/Lisbon"}
        | fields
    )


WEEKDAYS_9_TO_6 = [{"days": ["mon-fri"], "start": "09:00", "end": "18:00"}]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 26, 9, 0, tzinfo=UTC), None),  # Thu 09:00 Lisbon (WET = UTC)
        (
            datetime(2026, 11, 26, 8, 59, tzinfo=UTC),
            "off shift (local time Thu 08:59 Europe/Lisbon)",
        ),
        (
            datetime(2026, 11, 26, 18, 0, tzinfo=UTC),
            "off shift (local time Thu 18:00 Europe/Lisbon)",
        ),
        (
            datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
            "off shift (local time Sat 12:00 Europe/Lisbon)",
        ),
        # Summer: 08:30 UTC is 09:30 WEST.
        (datetime(2026, 7, 2, 8, 30, tzinfo=UTC), None),
    ],
)
def test_working_hours_in_the_reps_zone(moment: datetime, expected: str | None) -> None:
    assert off_duty(rep(working_hours=WEEKDAYS_9_TO_6), moment) == expected


def test_no_working_hours_means_always_on_shift() -> None:
    assert off_duty(rep(), datetime(2026, 11, 29, 3, 0, tzinfo=UTC)) is None


def test_inactive_wins_over_everything() -> None:
    assert off_duty(rep(active=False), datetime(2026, 11, 26, 12, 0, tzinfo=UTC)) == "inactive"


def test_public_holiday_in_the_reps_country() -> None:
    christmas = datetime(2026, 12, 25, 12, 0, tzinfo=UTC)
    portugal_day = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)

    assert off_duty(rep(country="PT"), christmas) == "public holiday in PT (Christmas Day)"
    assert off_duty(rep(country="PT"), portugal_day) is not None
    assert off_duty(rep(country="US"), portugal_day) is None
    assert off_duty(rep(), christmas) is None


def test_holiday_follows_the_reps_local_date() -> None:
    # 23:30 UTC on Dec 24 is already Dec 25 in Tokyo.
    tokyo = rep(country="US", timezone="Asia/Tokyo")
    assert off_duty(tokyo, datetime(2026, 12, 24, 23, 30, tzinfo=UTC)) is not None
    assert off_duty(rep(country="US"), datetime(2026, 12, 24, 23, 30, tzinfo=UTC)) is None


def test_subdivision_holidays() -> None:
    # Corpus Christi is a holiday in Bavaria, not in Berlin.
    corpus_christi = datetime(2026, 6, 4, 12, 0, tzinfo=UTC)
    assert off_duty(rep(country="DE", subdivision="BY"), corpus_christi) is not None
    assert off_duty(rep(country="DE", subdivision="BE"), corpus_christi) is None


def test_out_of_office_whole_days_in_the_reps_zone() -> None:
    away = rep(out_of_office=[{"start": "2026-12-01", "end": "2026-12-03", "note": "offsite"}])

    assert off_duty(away, datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) is None
    assert off_duty(away, datetime(2026, 12, 1, 0, 0, tzinfo=UTC)) == (
        "out of office until 2026-12-04 00:00 Europe/Lisbon (offsite)"
    )
    assert off_duty(away, datetime(2026, 12, 3, 23, 59, tzinfo=UTC)) is not None
    assert off_duty(away, datetime(2026, 12, 4, 0, 0, tzinfo=UTC)) is None


def test_out_of_office_between_instants() -> None:
    away = rep(
        out_of_office=[{"start": "2026-11-26T10:00:00+00:00", "end": "2026-11-26T12:00:00+00:00"}]
    )

    assert off_duty(away, datetime(2026, 11, 26, 9, 59, tzinfo=UTC)) is None
    assert off_duty(away, datetime(2026, 11, 26, 11, 0, tzinfo=UTC)) is not None
    assert off_duty(away, datetime(2026, 11, 26, 12, 0, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("caps", "load", "expected"),
    [
        ({}, RepLoad(today=100, open=100), None),
        ({"max_per_day": 3}, RepLoad(today=2), None),
        ({"max_per_day": 3}, RepLoad(today=3), "daily cap reached (3/3 today)"),
        ({"max_open": 5}, RepLoad(open=5), "open-lead cap reached (5/5 open)"),
        ({"max_open": 0}, RepLoad(), "open-lead cap reached (0/0 open)"),
        ({"max_per_day": 3, "max_open": 5}, RepLoad(today=1, open=4), None),
    ],
)
def test_caps(caps: dict[str, int], load: RepLoad, expected: str | None) -> None:
    assert over_capacity(rep(**caps), load) == expected


@pytest.mark.parametrize(
    ("skills", "lead", "expected"),
    [
        (["language"], Lead(language="pt-BR"), None),
        (["language"], Lead(language="de"), "does not speak 'de'"),
        (["language"], Lead(), None),
        (["product"], Lead(product_interest="Analytics"), None),
        (["product"], Lead(product_interest="payroll"), "does not cover product 'payroll'"),
        (["region"], Lead(country="PT"), None),
        (["region"], Lead(region="EMEA", country="US"), None),
        (["region"], Lead(country="US"), "does not cover region 'us'"),
        ([], Lead(language="de", country="US"), None),
    ],
)
def test_skills(skills: list[str], lead: Lead, expected: str | None) -> None:
    skilled = rep(languages=["en", "PT"], products=["analytics"], regions=["emea", "pt"])

    assert skill_gap(skilled, skills, lead) == expected


def test_cannot_take_checks_exclusion_then_duty_then_skills_then_caps() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    capped = rep(max_per_day=1, languages=["en"])
    lead = Lead(language="de")

    assert cannot_take(capped, now, RepLoad(today=1), lead=lead, excluded=frozenset({"ana"})) == (
        MISSED
    )
    assert cannot_take(capped, now, RepLoad(today=1), lead=lead, skills=["language"]) == (
        "does not speak 'de'"
    )
    assert cannot_take(capped, now, RepLoad(today=1), lead=lead) == "daily cap reached (1/1 today)"
    assert cannot_take(capped, now, RepLoad(), lead=lead) is None


def test_local_day_start() -> None:
    tokyo = rep(timezone="Asia/Tokyo")

    start = local_day_start(tokyo, datetime(2026, 11, 26, 16, 0, tzinfo=UTC))

    assert start == datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # Nov 27 00:00 JST


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        (MISSED, "missed"),
        ("off shift (local time Sat 12:00 Europe/Lisbon)", "off_shift"),
        ("out of office until 2026-12-04 00:00 Europe/Lisbon", "out_of_office"),
        ("public holiday in PT (Christmas Day)", "holiday"),
        ("does not speak 'de'", "skill"),
        ("daily cap reached (3/3 today)", "daily_cap"),
        ("open-lead cap reached (5/5 open)", "open_cap"),
        ("inactive", "inactive"),
        ("something new", "other"),
    ],
)
def test_skip_kinds_are_bounded_labels(reason: str, kind: str) -> None:
    assert skip_kind(reason) == kind
