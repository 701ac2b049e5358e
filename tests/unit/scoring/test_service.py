"""The scoring use case on the in-memory store: a batch is its events applied one by one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.events import (
    Envelope,
    LeadMerged,
    LeadReceived,
    LeadScored,
    new_event,
)
from leadflow.processing import PoisonEvent
from leadflow.topics import topic_for
from leadflow_intake.canonical import LeadBody, to_event
from leadflow_scoring import service
from leadflow_scoring.identity import Identifier, identifiers_of
from leadflow_scoring.memory import InMemoryProfileStore, complete
from tests.fixtures.keys import KEYS, lead_key_for
from tests.unit.scoring.test_replay import EXAMPLE

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
MODEL = EXAMPLE.scoring
EMAILS = ["ana@northwind.example", "ben@northwind.example", "cy@contoso.example"]
PHONES = ["+16135550101", "+16135550102", "+16135550103"]
ACTIVITIES = ["page_visit", "pricing_page", "webinar", "demo_request", "inbound_call"]


def event(lead: dict[str, Any], activity: str, hours: int, delivery: str) -> Envelope:
    """The `lead.received` the intake publishes for a webhook."""
    body = LeadBody.model_validate({"event": "lead", "activity": activity, "lead": lead})
    return to_event(
        body, keys=KEYS, source="web", delivery_id=delivery, now=T0 + timedelta(hours=hours)
    )


def received(envelope: Envelope) -> LeadReceived:
    """The event's `lead.received`."""
    assert isinstance(envelope.data, LeadReceived)
    return envelope.data


def emit(store: InMemoryProfileStore, batch: list[Envelope]) -> list[Envelope]:
    """Score a batch on the store; every event to publish."""
    emitted = complete(service.score_batch(store, batch, MODEL, KEYS, NOW))
    assert [e.type for e in emitted].count("lead.scored") == len(batch)
    return emitted


def score(store: InMemoryProfileStore, batch: list[Envelope]) -> list[LeadScored]:
    """Score a batch on the store; the `lead.scored` payloads."""
    return service.scores(emit(store, batch))


def keys(scored: LeadScored) -> set[str]:
    """Every key a score says its person has."""
    return {scored.lead_key, *scored.identifiers, *scored.merged_from}


def check_merges(emitted: list[Envelope]) -> None:
    """A `lead.merged` precedes a score exactly when its person has a key they had not at
    their previous score; it names the same survivor, absorbed profiles and identifiers."""
    before: dict[str, set[str]] = {}
    pending: LeadMerged | None = None
    for envelope in emitted:
        if isinstance(envelope.data, LeadMerged):
            assert pending is None
            assert envelope.subject == envelope.data.survivor
            assert topic_for(envelope.type) == "leads.activity"
            pending = envelope.data
            continue
        scored = envelope.data
        assert isinstance(scored, LeadScored)
        grew = not keys(scored) <= before.get(scored.lead_key, {scored.lead_key})
        assert (pending is not None) == grew
        if pending is not None:
            assert pending.survivor == scored.lead_key
            assert pending.absorbed == scored.merged_from
            assert pending.identifiers == scored.identifiers
            assert pending.merged_at == scored.scored_at
        before[scored.lead_key] = keys(scored)
        pending = None
    assert pending is None


def one_by_one(batch: list[Envelope]) -> list[LeadScored]:
    """The same events, each a batch of its own, on a store of their own."""
    store = InMemoryProfileStore()
    return [s for e in batch for s in score(store, [e])]


def test_two_events_of_a_new_person_in_one_batch_make_one_profile() -> None:
    first = event({"email": EMAILS[0]}, "pricing_page", 0, "d1")
    second = event({"email": EMAILS[0], "job_title": "CFO"}, "demo_request", 1, "d2")

    scored = score(InMemoryProfileStore(), [first, second])

    assert [s.lead_key for s in scored] == [first.subject, first.subject]
    assert [s.touches for s in scored] == [1, 2]
    assert [s.newly_qualified for s in scored] == [False, True]
    assert scored[1].lead.job_title == "CFO"
    assert scored == one_by_one([first, second])


def test_an_event_linking_two_profiles_of_the_batch_merges_them() -> None:
    by_phone = event({"phone": PHONES[0]}, "demo_request", 0, "d1")
    by_email = event({"email": EMAILS[0]}, "webinar", 1, "d2")
    linked = event({"email": EMAILS[0], "phone": PHONES[0]}, "webinar", 2, "d3")
    store = InMemoryProfileStore()

    emitted = emit(store, [by_phone, by_email, linked])
    scored = service.scores(emitted)
    later = emit(store, [event({"email": EMAILS[0]}, "page_visit", 3, "d4")])

    assert [e.type for e in emitted] == ["lead.scored", "lead.scored", "lead.merged", "lead.scored"]
    merged = emitted[2].data
    assert merged == LeadMerged(
        survivor=by_phone.subject,
        absorbed=[by_email.subject],
        identifiers=sorted([by_phone.subject, by_email.subject]),
        merged_at=NOW,
    )
    assert emitted[2].subject == by_phone.subject
    # The next event of the person gives them no new key: no merge to publish again.
    assert [e.type for e in later] == ["lead.scored"]
    later_scored = service.scores(later)

    assert scored[2].lead_key == by_phone.subject
    assert scored[2].merged_from == [by_email.subject]
    assert scored[2].identifiers == sorted([by_phone.subject, by_email.subject])
    assert (scored[2].touches, scored[2].newly_qualified, scored[2].tier) == (3, False, "mql")
    assert later_scored[0].lead_key == by_phone.subject
    assert later_scored[0].merged_from == [by_email.subject]
    assert later_scored[0].touches == 4


def test_a_new_person_with_an_email_and_a_phone_publishes_the_link() -> None:
    both = event({"email": EMAILS[0], "phone": PHONES[0]}, "webinar", 0, "d1")
    alone = event({"email": EMAILS[1]}, "webinar", 0, "d2")
    invalid = event({"email": EMAILS[2], "phone": "+1613555"}, "webinar", 0, "d3")

    emitted = emit(InMemoryProfileStore(), [both, alone, invalid])

    # Only the first names a second key: a phone that is no valid number identifies nobody.
    assert [e.type for e in emitted] == ["lead.merged", *["lead.scored"] * 3]
    assert emitted[0].data == LeadMerged(
        survivor=both.subject,
        absorbed=[],
        identifiers=sorted([both.subject, lead_key_for(PHONES[0])]),
        merged_at=NOW,
    )


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Envelope], list[int]]:
    """Events of a few people (email, phone or both, in any order of time), and batch sizes."""
    events: list[Envelope] = []
    for n in range(draw(st.integers(1, 14))):
        lead: dict[str, Any] = {}
        if draw(st.booleans()):
            lead["email"] = draw(st.sampled_from(EMAILS))
        if not lead or draw(st.booleans()):
            lead["phone"] = draw(st.sampled_from(PHONES))
        activity = draw(st.sampled_from(ACTIVITIES))
        events.append(event(lead, activity, draw(st.integers(0, 48)), f"d{n}"))
    if draw(st.booleans()):
        events.append(draw(st.sampled_from(events)))  # a redelivery: its touch is stored
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=len(events) or 1))
    return events, sizes


@settings(max_examples=150, deadline=None)
@given(streams())
def test_a_batch_scores_as_its_events_one_by_one(stream: tuple[list[Envelope], list[int]]) -> None:
    events, sizes = stream
    store = InMemoryProfileStore()
    emitted: list[Envelope] = []
    start, n = 0, 0
    while start < len(events):
        size = sizes[n % len(sizes)]
        emitted += emit(store, events[start : start + size])
        start, n = start + size, n + 1
    batched = service.scores(emitted)

    alone = InMemoryProfileStore()
    assert [e.data for e in emitted] == [d.data for e in events for d in emit(alone, [e])]
    check_merges(emitted)
    # Against a plain model of identity: events sharing an identifier are one person, who
    # has one live profile with all their identifiers; every other profile they ever had
    # (each scored under its key when it started) is merged into it.
    person = _people([identifiers_of(received(e), KEYS) for e in events])
    merged = {key for s in batched for key in s.merged_from}
    final = {s.lead_key: s for s in batched if s.lead_key not in merged}
    everyone = {frozenset(keys) for keys in person.values()}
    assert sorted(sorted(s.identifiers) for s in final.values()) == sorted(map(sorted, everyone))
    for live in final.values():
        ever = {s.lead_key for s in batched if s.lead_key in person[live.lead_key]}
        assert sorted(ever - {live.lead_key}) == live.merged_from


def _people(events: list[list[Identifier]]) -> dict[str, set[str]]:
    """Each identifier key's person (their every key): events sharing an identifier are one."""
    group: dict[str, str] = {}

    def root(key: str) -> str:
        while group.setdefault(key, key) != key:
            key = group[key]
        return key

    for identifiers in events:
        first, *rest = [root(i.key) for i in identifiers]
        for other in rest:
            group[root(other)] = root(first)
    found: dict[str, set[str]] = {}
    for key in group:
        found.setdefault(root(key), set()).add(key)
    return {key: keys for keys in found.values() for key in keys}


def test_a_failed_batch_leaves_the_store_as_it_was() -> None:
    store = InMemoryProfileStore()
    first = event({"email": EMAILS[0]}, "webinar", 0, "d1")
    score(store, [first])
    # Its touch is stored, so under a new person it leaves them with none: the batch fails.
    stray = new_event(
        "lead.received",
        event({"email": EMAILS[2]}, "webinar", 1, "d9").data,
        source="/test",
        time=NOW,
        event_id=first.id,
    )
    newcomer = event({"email": EMAILS[1]}, "webinar", 1, "d2")

    with pytest.raises(ValueError, match="at least one touch"):
        score(store, [newcomer, stray])

    assert score(store, [newcomer])[0].touches == 1


def test_only_lead_received_is_scored() -> None:
    scored = score(InMemoryProfileStore(), [event({"email": EMAILS[0]}, "webinar", 0, "d1")])
    other = new_event("lead.scored", scored[0], source="/test", time=NOW)

    with pytest.raises(PoisonEvent, match=r"lead\.received"):
        score(InMemoryProfileStore(), [other])


def test_complete_runs_a_coroutine_that_never_waits() -> None:
    async def immediate() -> int:
        return 7

    async def waits() -> int:
        await asyncio.sleep(0)
        return 7

    assert complete(immediate()) == 7
    with pytest.raises(RuntimeError, match="event loop"):
        complete(waits())
