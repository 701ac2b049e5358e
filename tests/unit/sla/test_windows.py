"""A batch's follow-up windows in memory: what each event opens and closes, in order (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.aliases import AliasBook, Merge
from leadflow.config import LeadflowConfig
from leadflow.events import (
    Envelope,
    LeadActivity,
    LeadAssigned,
    LeadMerged,
    LeadUnassigned,
    new_event,
)
from leadflow_sla.windows import FollowUpWindow, ReportedOutcome, WindowBook, apply, touched
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


def test_a_reassignment_by_hand_restarts_the_clock_without_counting_an_escalation() -> None:
    policy = {
        "name": "hot",
        "window": "10m",
        "tiers": ["mql"],
        "escalate_after": "5m",
        "max_escalations": 1,
    }
    config = make_config(sla={"policies": [policy]})
    by_hand = assigned("b", seq=2)
    assert isinstance(by_hand.data, LeadAssigned)
    by_hand.data.escalations = 0
    escalated = assigned("b", seq=2)
    assert isinstance(escalated.data, LeadAssigned)
    escalated.data.escalations = 1

    manual = run(config, WindowBook([stored("b")]), by_hand)
    auto = run(config, WindowBook([stored("b")]), escalated)

    assert [w.outcome for w in manual.closed] == ["reassigned"]
    [opened] = manual.opened
    assert opened.escalations == 0
    # The new rep can still be escalated; after an escalation the one allowed is spent.
    assert "escalated" in {s.stage for s in opened.stages}
    assert "escalated" not in {s.stage for s in auto.opened[0].stages}


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


def test_a_win_or_a_loss_stops_the_clock_and_a_queued_lead_changes_nothing(
    config: LeadflowConfig,
) -> None:
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

    # A rep who won or lost the lead followed it up: the window closes on the first, and
    # the assignment ends with it (the router closes it too).
    assert book.opened == []
    assert [(w.lead_key, w.outcome, w.contacted_at) for w in book.closed] == [("f", "won", None)]
    # Both outcomes are kept for later merges.
    assert [(o.lead_key, o.activity) for o in book.reported] == [("f", "won"), ("f", "lost")]
    assert touched(events) == ({"f"}, set())
    assert touched([assigned("g"), activity("h", "rejected")]) == ({"g", "h"}, {"g-1"})


# --- one person, one window -------------------------------------------------------------

EMAIL, PHONE = "lk_email", "lk_phone"


def first_assigned(lead_key: str, rep_id: str = "ana", minutes: float = 0) -> Envelope:
    """A first assignment (no rep before it), `minutes` after T0."""
    at = T0 + timedelta(minutes=minutes)
    data = LeadAssigned(
        lead_key=lead_key,
        assignment_id=f"{lead_key}-{rep_id}",
        rep_id=rep_id,
        rep_name=rep_id.title(),
        team="enterprise",
        rule="enterprise-size",
        tier="mql",
        reason="test",
        assigned_at=at,
        received_at=at,
    )
    return new_event("lead.assigned", data, source="/t", time=at, event_id=data.assignment_id)


def reported(kind: str, *keys: str, minutes: float = 2) -> Envelope:
    """A CRM outcome naming its person by `keys`, best first."""
    at = T0 + timedelta(minutes=minutes)
    data = LeadActivity(
        lead_key=keys[0], identifiers=list(keys), activity=kind, occurred_at=at, source="crm"
    )
    event_id = f"{kind}-{'-'.join(keys)}-{minutes}"
    return new_event(f"lead.{kind}", data, source="/t", time=at, event_id=event_id)


def merged(survivor: str, *aliases: str, absorbed: bool = False) -> Envelope:
    """Scoring's `lead.merged`: `aliases` now mean `survivor` (profiles it absorbed, or
    identifiers attached)."""
    data = LeadMerged(
        survivor=survivor,
        absorbed=list(aliases) if absorbed else [],
        identifiers=[survivor, *aliases],
        merged_at=T0 + timedelta(minutes=1),
    )
    return new_event("lead.merged", data, source="/t", time=T0, event_id=f"merge-{survivor}")


def windows_of(book: WindowBook) -> list[tuple[str, str, str, str | None, datetime | None]]:
    """(assignment, person, status, outcome, contacted at) of each window the batch wrote."""
    return sorted(
        (w.assignment_id, w.lead_key, w.status, w.outcome, w.contacted_at)
        for w in (*book.opened, *book.closed)
    )


def test_a_contact_reported_by_phone_closes_the_window_assigned_under_the_email(
    config: LeadflowConfig,
) -> None:
    book = run(
        config,
        WindowBook(),
        first_assigned(EMAIL),
        merged(EMAIL, PHONE),
        reported("contacted", PHONE),
    )

    contacted = T0 + timedelta(minutes=2)
    assert windows_of(book) == [("lk_email-ana", EMAIL, "closed", "contacted", contacted)]
    assert book.open_timers() == []
    assert book.moved == {PHONE: EMAIL}
    assert book.aliases.canonical(PHONE) == EMAIL


def test_without_the_merge_a_contact_by_phone_is_another_persons(
    config: LeadflowConfig,
) -> None:
    book = run(config, WindowBook(), first_assigned(EMAIL), reported("contacted", PHONE))

    assert windows_of(book) == [("lk_email-ana", EMAIL, "open", None, None)]
    assert [(o.lead_key, o.activity) for o in book.reported] == [(PHONE, "contacted")]


def test_a_contact_by_phone_before_the_merge_closes_the_window_when_the_merge_comes(
    config: LeadflowConfig,
) -> None:
    book = run(
        config,
        WindowBook(),
        first_assigned(EMAIL),
        reported("contacted", PHONE),
        merged(EMAIL, PHONE),
    )

    contacted = T0 + timedelta(minutes=2)
    assert windows_of(book) == [("lk_email-ana", EMAIL, "closed", "contacted", contacted)]
    # The outcome moved to the person with the window.
    assert [(o.lead_key, o.activity) for o in book.reported] == [(EMAIL, "contacted")]


def test_an_outcome_stored_before_the_merge_closes_a_stored_window(
    config: LeadflowConfig,
) -> None:
    window = stored(EMAIL)
    earlier = ReportedOutcome(PHONE, "accepted", window.assigned_at + timedelta(minutes=3), "x")
    book = run(config, WindowBook([window], outcomes=[earlier]), merged(EMAIL, PHONE))

    [closed] = book.closed
    assert (closed.assignment_id, closed.outcome, closed.closed_at) == (
        f"{EMAIL}-1",
        "accepted",
        NOW,
    )
    assert closed.contacted_at is None


def test_an_outcome_from_before_the_assignment_does_not_close_it_at_the_merge(
    config: LeadflowConfig,
) -> None:
    window = stored(EMAIL)
    older = ReportedOutcome(PHONE, "contacted", window.assigned_at - timedelta(days=3), "old")
    book = run(config, WindowBook([window], outcomes=[older]), merged(EMAIL, PHONE))

    assert book.closed == []
    assert book.moved == {PHONE: EMAIL}


def test_of_two_live_windows_the_earlier_assignment_stays_the_other_closes_as_merged(
    config: LeadflowConfig,
) -> None:
    book = run(
        config,
        WindowBook(),
        first_assigned(PHONE, "ben", minutes=0),
        first_assigned(EMAIL, "ana", minutes=0.5),
        merged(PHONE, EMAIL, absorbed=True),
    )

    assert windows_of(book) == [
        ("lk_email-ana", PHONE, "closed", "merged", None),
        ("lk_phone-ben", PHONE, "open", None, None),
    ]
    # Only the kept window's timers are open; the merged one's are written stopped.
    assert book.open_timers() == [T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]


@pytest.mark.parametrize("merge_first", [False, True], ids=["merge-last", "merge-first"])
def test_of_two_windows_assigned_at_one_instant_the_one_the_router_decided_first_stays(
    config: LeadflowConfig, merge_first: bool
) -> None:
    """One router batch assigned both: their `batch_position` says which it decided first
    (the phone's, whose assignment id sorts after the email's), in whatever order the
    monitor receives the assignments and the merge."""
    phone, email = first_assigned(PHONE, "ben"), first_assigned(EMAIL, "ana")
    for event, position in ((phone, 0), (email, 1)):
        assert isinstance(event.data, LeadAssigned)
        event.data.batch_position = position
    merge = merged(PHONE, EMAIL, absorbed=True)
    events = [merge, email, phone] if merge_first else [email, phone, merge]
    book = run(config, WindowBook(), *events)

    assert windows_of(book) == [
        ("lk_email-ana", PHONE, "closed", "merged", None),
        ("lk_phone-ben", PHONE, "open", None, None),
    ]
    assert [w.batch_position for w in book.opened] == [1, 0]


def test_a_first_assignment_of_a_merged_person_with_a_window_keeps_the_earlier(
    config: LeadflowConfig,
) -> None:
    book = run(
        config,
        WindowBook([stored(EMAIL)]),  # assigned an hour before T0
        merged(EMAIL, PHONE),
        first_assigned(PHONE, "ben"),
    )

    assert windows_of(book) == [("lk_phone-ben", EMAIL, "closed", "merged", None)]
    assert book.closed == []  # the stored window stays open


def test_an_outcome_naming_an_unknown_email_and_a_known_phone_finds_the_phones_window(
    config: LeadflowConfig,
) -> None:
    outcome = reported("contacted", "lk_new_email", PHONE)
    book = run(config, WindowBook(), first_assigned(PHONE), outcome)

    assert windows_of(book) == [
        ("lk_phone-ana", PHONE, "closed", "contacted", T0 + timedelta(minutes=2))
    ]
    assert touched([outcome]) == ({"lk_new_email", PHONE}, set())


def test_a_merge_the_monitor_already_knows_moves_nothing(config: LeadflowConfig) -> None:
    known = AliasBook()
    known.apply(Merge(EMAIL, (PHONE,), T0))
    book = run(config, WindowBook([stored(EMAIL)], AliasBook(known.rows())), merged(EMAIL, PHONE))

    assert (book.moved, book.closed, book.aliases.changed()) == ({}, [], {})


def test_a_reassignment_under_an_absorbed_key_restarts_the_persons_clock(
    config: LeadflowConfig,
) -> None:
    book = run(config, WindowBook([stored(EMAIL)]), merged(EMAIL, PHONE), assigned(PHONE, seq=2))

    [closed] = book.closed
    assert (closed.assignment_id, closed.outcome) == (f"{EMAIL}-1", "reassigned")
    [opened] = book.opened
    assert (opened.assignment_id, opened.lead_key, opened.status) == (f"{PHONE}-2", EMAIL, "open")


def final(config: LeadflowConfig, events: list[Envelope]) -> list[tuple[object, ...]]:
    """Each window's end, applying the events one batch each (what a batch writes carried
    over to the next as the database would: windows, outcomes, aliases, keys moved)."""
    rows: dict[str, FollowUpWindow] = {}
    outcomes: list[ReportedOutcome] = []
    aliases = AliasBook()
    for event in events:
        book = WindowBook(list(rows.values()), AliasBook(aliases.rows()), list(outcomes))
        apply(book, event, config, NOW)
        for window in book.opened:
            window.id = len(rows) + 1
            rows[window.assignment_id] = window
        for key, root in book.moved.items():
            rekeyed: list[FollowUpWindow | ReportedOutcome] = [*rows.values(), *outcomes]
            for row in rekeyed:
                if row.lead_key == key:
                    row.lead_key = root
        outcomes.extend(book.reported)
        aliases = book.aliases
    return sorted(
        (w.assignment_id, w.lead_key, w.status, w.outcome, w.contacted_at) for w in rows.values()
    )


@settings(max_examples=200, deadline=None)
@given(
    two_profiles=st.booleans(),
    contact_by=st.sampled_from([EMAIL, PHONE]),
    survivor=st.sampled_from([EMAIL, PHONE]),
    absorbed=st.booleans(),
    position=st.integers(0, 3),
)
def test_the_merge_before_or_after_the_assignments_and_the_contact_gives_the_same_end(
    config: LeadflowConfig,
    two_profiles: bool,
    contact_by: str,
    survivor: str,
    absorbed: bool,
    position: int,
) -> None:
    """A person assigned under the email (and, with two profiles, under the phone too, a
    little later), then contacted under one of the keys; scoring merges the keys anywhere
    in between: the windows end exactly alike. With two profiles the later assignment's
    window ends `merged` even when the contact closed it before the merge (the router
    keeps the earlier assignment, live until the person is rejected, converted, won or
    lost), and the contact closes the kept one."""
    story = [first_assigned(EMAIL, "ana", minutes=0)]
    if two_profiles:
        story.append(first_assigned(PHONE, "ben", minutes=0.5))
    story.append(reported("contacted", contact_by, minutes=3))
    position = min(position, len(story))
    other = PHONE if survivor == EMAIL else EMAIL
    merge = merged(survivor, other, absorbed=absorbed)

    events = [*story[:position], merge, *story[position:]]
    ending = final(config, events)

    # One batch of them all ends as one batch each.
    assert windows_of(run(config, WindowBook(), *events)) == ending
    contacted = T0 + timedelta(minutes=3)
    assert ending == final(config, [merge, *story])
    assert ("lk_email-ana", survivor, "closed", "contacted", contacted) in ending
    assert {(row[1], row[2]) for row in ending} == {(survivor, "closed")}
    if two_profiles:
        assert ending[1] == ("lk_phone-ben", survivor, "closed", "merged", None)


def test_a_lead_claimed_from_a_pool_counts_from_its_arrival_when_the_pool_says_so(
    config: LeadflowConfig,
) -> None:
    """`clock_from` (a pool whose clock starts at arrival): the ladder runs from the arrival,
    so a lead claimed eight minutes after it arrived is due two minutes after the claim."""
    claimed = assigned("p").data
    assert isinstance(claimed, LeadAssigned)
    arrival = claimed.model_copy(
        update={"assigned_at": T0 + timedelta(minutes=8), "clock_from": T0}
    )
    book = run(config, WindowBook(), new_event("lead.assigned", arrival, source="/t", time=T0))
    [window] = book.opened
    assert window.assigned_at == T0 + timedelta(minutes=8)
    assert window.due_at == T0 + timedelta(minutes=10)
    assert [(s.stage, s.due_at) for s in window.stages] == [
        ("warning", T0 + timedelta(minutes=5)),
        ("breached", T0 + timedelta(minutes=10)),
    ]
