"""SLA arithmetic and the wording of the alert a manager reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from leadflow_sla.domain import (
    STOPPING_ACTIVITIES,
    breach_message,
    describe_lateness,
    due_at,
    escalation_message,
    warning_message,
)

ASSIGNED = datetime(2026, 11, 26, 9, 58, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (timedelta(minutes=5), datetime(2026, 11, 26, 10, 3, 30, tzinfo=UTC)),
        (timedelta(hours=4), datetime(2026, 11, 26, 13, 58, 30, tzinfo=UTC)),
        (timedelta(days=2), datetime(2026, 11, 28, 9, 58, 30, tzinfo=UTC)),
        (timedelta(0), ASSIGNED),
    ],
)
def test_due_at(window: timedelta, expected: datetime) -> None:
    assert due_at(ASSIGNED, window) == expected


def test_due_at_keeps_the_assignment_time_zone() -> None:
    new_york = timezone(timedelta(hours=-5))

    due = due_at(ASSIGNED.astimezone(new_york), timedelta(minutes=5))

    assert due == datetime(2026, 11, 26, 10, 3, 30, tzinfo=UTC)
    assert due.utcoffset() == timedelta(hours=-5)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0 s"),
        (0.4, "0 s"),
        (45, "45 s"),
        (59, "59 s"),
        (-30, "0 s"),
        (60, "1 min"),
        (119.9, "1 min"),
        (720, "12 min"),
        (3599, "59 min"),
        (3600, "1 h 0 min"),
        (11_100, "3 h 5 min"),
        (90_061, "25 h 1 min"),
    ],
)
def test_describe_lateness(seconds: float, expected: str) -> None:
    assert describe_lateness(seconds) == expected


@pytest.mark.parametrize("seconds", [59.5, 59.9])
def test_describe_lateness_never_shows_sixty_seconds(seconds: float) -> None:
    # Minutes are truncated (119 s is "1 min"); seconds must be too, or 59.9 s reads "60 s".
    assert describe_lateness(seconds) == "59 s"


def test_breach_message() -> None:
    message = breach_message(
        rep_name="Ben Carter",
        team="enterprise",
        lead_key="lk_8e43ca37701228e74983efdb",
        policy="hot-mql",
        window=timedelta(minutes=5),
        assigned_at=ASSIGNED,
        now=ASSIGNED + timedelta(minutes=17, seconds=10),
        lead_url="http://router:8002/v1/leads/lk_8e43ca37701228e74983efdb/routing",
    )

    assert message == (
        "Ben Carter (enterprise) has not contacted lead lk_8e43ca37701228e74983efdb within "
        "the 5 min hot-mql window: assigned 2026-11-26 09:58 UTC, now 12 min overdue. "
        "Routing record: http://router:8002/v1/leads/lk_8e43ca37701228e74983efdb/routing"
    )


@pytest.mark.parametrize(
    ("window", "late", "window_text", "late_text"),
    [
        (timedelta(minutes=5), timedelta(seconds=1), "5 min", "1 s"),
        (timedelta(hours=1, minutes=30), timedelta(hours=2, minutes=1), "1 h 30 min", "2 h 1 min"),
        (timedelta(seconds=45), timedelta(0), "45 s", "0 s"),
        (timedelta(minutes=5), -timedelta(seconds=20), "5 min", "0 s"),
    ],
)
def test_breach_message_durations(
    window: timedelta, late: timedelta, window_text: str, late_text: str
) -> None:
    message = breach_message(
        rep_name="Ana",
        team="smb",
        lead_key="lk_1",
        policy="p",
        window=window,
        assigned_at=ASSIGNED,
        now=ASSIGNED + window + late,
        lead_url="u",
    )

    assert f"within the {window_text} p window" in message
    assert f"now {late_text} overdue" in message


def test_breach_message_shows_the_assignment_time_in_utc() -> None:
    # The message says "UTC": an assignment time carried with another offset must be converted.
    lisbon_summer = timezone(timedelta(hours=1))

    message = breach_message(
        rep_name="Ana",
        team="smb",
        lead_key="lk_1",
        policy="p",
        window=timedelta(minutes=5),
        assigned_at=ASSIGNED.astimezone(lisbon_summer),
        now=ASSIGNED + timedelta(minutes=10),
        lead_url="u",
    )

    assert "assigned 2026-11-26 09:58 UTC, now 5 min overdue" in message


@pytest.mark.parametrize(
    ("event_type", "stops"),
    [
        ("lead.contacted", True),
        ("lead.accepted", True),
        ("lead.rejected", True),
        ("lead.converted", True),
        ("lead.won", True),
        ("lead.lost", True),
        ("lead.assigned", False),
        ("lead.scored", False),
    ],
)
def test_stopping_activities(event_type: str, stops: bool) -> None:
    assert (event_type in STOPPING_ACTIVITIES) is stops


def test_breach_message_counts_lateness_from_the_business_time_due() -> None:
    # Assigned Friday 16:58; in business time the 5-minute window closed Monday 09:03.
    friday = datetime(2026, 11, 27, 16, 58, tzinfo=UTC)
    monday_due = datetime(2026, 11, 30, 9, 3, tzinfo=UTC)

    message = breach_message(
        rep_name="Ana",
        team="smb",
        lead_key="lk_1",
        policy="p",
        window=timedelta(minutes=5),
        assigned_at=friday,
        now=monday_due + timedelta(minutes=2),
        lead_url="u",
        due_at=monday_due,
    )

    assert "now 2 min overdue" in message


def test_warning_message() -> None:
    message = warning_message(
        rep_name="Ana Silva",
        lead_key="lk_1",
        policy="hot-mql",
        window=timedelta(minutes=5),
        due_at=ASSIGNED + timedelta(minutes=5),
        now=ASSIGNED + timedelta(minutes=4),
        lead_url="http://router/v1/leads/lk_1/routing",
    )

    assert message == (
        "Ana Silva, lead lk_1 is still waiting for your first contact: the 5 min hot-mql "
        "window closes at 2026-11-26 10:03 UTC (in 1 min). "
        "Routing record: http://router/v1/leads/lk_1/routing"
    )


def test_escalation_message() -> None:
    message = escalation_message(
        rep_name="Ben Carter",
        team="enterprise",
        lead_key="lk_1",
        policy="hot-mql",
        window_due_at=ASSIGNED,
        now=ASSIGNED + timedelta(minutes=15, seconds=20),
        escalation=1,
        max_escalations=2,
        lead_url="http://router/v1/leads/lk_1/routing",
    )

    assert message == (
        "Ben Carter (enterprise) still has not contacted lead lk_1, 15 min after the hot-mql "
        "window closed: the lead is being reassigned (escalation 1 of 2). "
        "Routing record: http://router/v1/leads/lk_1/routing"
    )
