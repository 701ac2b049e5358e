"""A batch's follow-up windows in memory: what each event opens and closes, in order (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadflow.config import LeadflowConfig
from leadflow.events import Envelope, LeadActivity, LeadAssigned, LeadUnassigned, new_event
from leadflow_sla.windows import FollowUpWindow, WindowBook, apply, touched
from tests.fixtures.routing import make_config

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)


@pytest.fixture(scope="module")
def config() -> LeadflowConfig:
    """MQLs get a 10-minute window with a warning at half time; other tiers none."""
    policy = {"name": "hot", "window": "10m", "tiers": ["mql"], "warn_at_percent": 50}
    return make_config(sla={"policies": [policy]})


def assigned(lead_key: str, seq: int = 1, tier: str = "mql", event_id: str = "") -> Envelope:
    data = LeadAssigned(
        lead_key=lead_key,
        assignment_id=f"{lead_key}-{seq}",
        rep_id="ana",
        rep_name="Ana",
        team="enterprise",
        rule="enterprise-size",
        tier=tier,
        reason="test",
        assigned_at=T0,
        received_at=T0,
        previous_rep_ids=["ben"] * (seq - 1),
    )
    return new_event("lead.assigned", data, source="/t", time=T0, event_id=event_id or None)


def activity(lead_key: str, kind: str, minutes: float = 2) -> Envelope:
    at = T0 + timedelta(minutes=minutes)
    data = LeadActivity(lead_key=lead_key, activity=kind, occurred_at=at, source="crm")
    return new_event(f"lead.{kind}", data, source="/t", time=at)


def stored(lead_key: str, seq: int = 1, status: str = "open") -> FollowUpWindow:
    """A window as a batch loads it from the database."""
    return FollowUpWindow(
        assignment_id=f"{lead_key}-{seq}",
        lead_key=lead_key,
        policy="hot",
        clock="wall",
        window_s=600,
        tier="mql",
        rep_id="ana",
        team="enterprise",
        escalations=0,
        assigned_at=T0 - timedelta(hours=1),
        due_at=T0 - timedelta(minutes=50),
        status=status,
        id=seq,
    )


def run(config: LeadflowConfig, book: WindowBook, *events: Envelope) -> WindowBook:
    for event in events:
        apply(book, event, config, NOW)
    return book


def test_a_window_opened_and_contacted_in_one_batch_is_written_closed(
    config: LeadflowConfig,
) -> None:
    book = run(config, WindowBook(), assigned("a"), activity("a", "contacted"))

    [window] = book.opened
    assert (window.status, window.outcome, window.closed_at) == ("closed", "contacted", NOW)
    assert window.contacted_at == T0 + timedelta(minutes=2)
    assert [s.stage for s in window.stages] == ["warning", "breached"]
    assert book.closed == []  # nothing stored to update
    assert book.open_timers() == []
    assert book.speeds_to_lead() == [120.0]


def test_a_contact_before_the_assignment_closes_nothing(config: LeadflowConfig) -> None:
    book = run(config, WindowBook(), activity("a", "contacted"), assigned("a"))

    [window] = book.opened
    assert window.status == "open"
    assert book.open_timers() == [T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]
    assert book.speeds_to_lead() == []


def test_a_reassignment_closes_the_stored_window_and_opens_the_next(
    config: LeadflowConfig,
) -> None:
    book = run(config, WindowBook([stored("b")]), assigned("b", seq=2))

    [closed] = book.closed
    assert (closed.assignment_id, closed.outcome, closed.closed_at) == ("b-1", "reassigned", NOW)
    assert closed.contacted_at is None
    [opened] = book.opened
    assert (opened.assignment_id, opened.escalations, opened.status) == ("b-2", 1, "open")


def test_copies_of_an_assignment_open_one_window_even_after_it_closed(
    config: LeadflowConfig,
) -> None:
    book = run(
        config,
        WindowBook([stored("c", status="closed")]),
        assigned("c"),
        assigned("d", event_id="first"),
        activity("d", "accepted"),
        assigned("d", event_id="copy"),
    )

    assert [(w.assignment_id, w.status, w.outcome) for w in book.opened] == [
        ("d-1", "closed", "accepted")
    ]
    assert book.closed == []


def test_an_assignment_without_a_policy_closes_the_window_and_opens_none(
    config: LeadflowConfig,
) -> None:
    book = run(config, WindowBook([stored("e")]), assigned("e", seq=2, tier="watch"))

    assert [(w.assignment_id, w.outcome) for w in book.closed] == [("e-1", "reassigned")]
    assert book.opened == []


def test_outcomes_that_do_not_stop_the_clock_change_nothing(config: LeadflowConfig) -> None:
    unassigned = LeadUnassigned(
        lead_key="f",
        team="smb",
        rule="x",
        tier="mql",
        reason="nobody free",
        queued_at=T0,
        received_at=T0,
    )
    events = [
        activity("f", "won"),
        activity("f", "lost"),
        new_event("lead.unassigned", unassigned, source="/t", time=T0),
    ]
    book = run(config, WindowBook([stored("f")]), *events)

    assert (book.opened, book.closed) == ([], [])
    assert touched(events) == (set(), set())
    assert touched([assigned("g"), activity("h", "rejected")]) == ({"g", "h"}, {"g-1"})
