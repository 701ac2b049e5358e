"""One person, one assignment: the router's aliases, merges and outcomes by any key (in memory).

The same use case runs on the database in `tests/integration/test_router_merges.py`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.coroutines import complete
from leadflow.events import (
    Company,
    Envelope,
    Lead,
    LeadActivity,
    LeadAssigned,
    LeadMerged,
    Payload,
    SlaAlert,
    derived_event_id,
    new_event,
)
from leadflow.keys import LeadKeys
from leadflow_router.memory import InMemoryRoutingStore
from leadflow_router.replay import Replay
from tests.fixtures.keys import KEYS
from tests.fixtures.routing import NOW, make_config, scored

# Keys are opaque to the router: these are the development secret's, and the batch in
# test_a_batch_with_everything_decides_as_batches_of_one is run under other secrets too.
EMAIL, PHONE, PHONE_2 = "ana.buyer@northwind.example", "+16135550101", "+16135550102"
E = KEYS.key(EMAIL)  # the email's key: the survivor
P = KEYS.key(PHONE)  # the phone's key: a profile of its own until the merge
Q = KEYS.key(PHONE_2)  # a third profile, merged later
X = KEYS.key("nobody@northwind.example")  # a key the router never saw
# Random secrets of an installation (seeded: a failure names the secret that shows it).
SECRETS = [random.Random(seed).randbytes(32).hex() for seed in range(12)]
BIG = Company(size=5000)  # enterprise: ana, ben, chloe by round robin


def at(minutes: float) -> Any:
    return NOW + timedelta(minutes=minutes)


def score(
    key: str,
    minutes: float,
    *,
    merged_from: Sequence[str] = (),
    identifiers: Sequence[str] = (),
    newly: bool = True,
    lead: Lead | None = None,
    event_id: str | None = None,
) -> Envelope:
    data = scored(lead or Lead(company=BIG), lead_key=key, at=at(minutes))
    data = data.model_copy(
        update={
            "newly_qualified": newly,
            "merged_from": sorted(merged_from),
            "identifiers": sorted(identifiers),
        }
    )
    event_id = event_id or f"score-{key}-{minutes}"
    return new_event("lead.scored", data, source="/test", time=at(minutes), event_id=event_id)


def merged(
    survivor: str, absorbed: Sequence[str], identifiers: Sequence[str], minutes: float
) -> Envelope:
    data = LeadMerged(
        survivor=survivor,
        absorbed=sorted(absorbed),
        identifiers=sorted(identifiers),
        merged_at=at(minutes),
    )
    return new_event(
        "lead.merged", data, source="/test", time=at(minutes), event_id=f"merged-{minutes}"
    )


def outcome(keys: Sequence[str], kind: str, minutes: float) -> Envelope:
    data = LeadActivity(
        lead_key=keys[0],
        identifiers=list(keys),
        activity=kind,
        occurred_at=at(minutes),
        source="crm",
    )
    return new_event(
        f"lead.{kind}", data, source="/test", time=at(minutes), event_id=f"{kind}-{minutes}"
    )


def escalation(key: str, assignment_id: str, rep_id: str, minutes: float) -> Envelope:
    alert = SlaAlert(
        lead_key=key,
        assignment_id=assignment_id,
        stage="escalated",
        policy="hot",
        rep_id=rep_id,
        rep_name=rep_id,
        team="enterprise",
        manager_email="grace@example.com",
        assigned_at=at(0),
        due_at=at(5),
        fired_at=at(minutes),
        late_by_s=60,
        message="escalated",
    )
    return new_event(
        "sla.escalated", alert, source="/test", time=at(minutes), event_id=f"esc-{minutes}"
    )


def rows(replay: Replay) -> list[tuple[str, int, str | None, str | None]]:
    """Every assignment as (lead key, seq, rep, close reason)."""
    return [(r.lead_key, r.seq, r.rep_id, r.close_reason) for r in replay.store.assignments]


def assigned(published: Sequence[Payload]) -> list[LeadAssigned]:
    """The assignments among what the router published, each checked to be one."""
    assert all(isinstance(data, LeadAssigned) for data in published)
    return [data for data in published if isinstance(data, LeadAssigned)]


def run(replay: Replay, *events: Envelope) -> None:
    """Apply each event in a batch of its own, at its own time."""
    for event in events:
        replay.apply([event], event.time)


def test_two_profiles_routed_before_they_merge_keep_the_earlier_assignment() -> None:
    replay = Replay(make_config())
    run(replay, score(E, 0), score(P, 1), merged(E, [P], [E, P], 2))

    # Both moved under the survivor's key: the email's, made first, stays with ana; the
    # phone's closed as `merged`, numbered after it.
    assert sorted(rows(replay)) == [(E, 1, "ana", None), (E, 2, "ben", "merged")]
    store = replay.store
    assert {d.assignment.lead_key for d in store.decided} == {E}
    assert [e.subject for e in store.events] == [E, P]  # the two assignments, nothing more
    open_leads, _ = _tallies(store)
    assert open_leads == {"ana": 1, "ben": 0, "chloe": 0}
    assert store.person(P) == E
    # Both reps hear of it, once each.
    merged_notes = sorted(
        (n.target, n.dedupe_key.rsplit(":", 2)[1])
        for n in store.notifications
        if n.dedupe_key.startswith("router:merged:") and n.channel == "email"
    )
    assert merged_notes == [("ana@example.com", "kept"), ("ben@example.com", "closed")]
    ben = next(
        n for n in store.notifications if n.target == "ben@example.com" and "merged" in n.dedupe_key
    )
    assert "Ana Silva" in ben.subject
    assert "no longer need to follow it up" in ben.body

    # The same merge again (a redelivery under another id, or the merged_from of a later
    # score) changes nothing.
    before = (rows(replay), len(store.notifications))
    run(replay, score(E, 3, merged_from=[P], identifiers=[E, P], newly=False))
    assert (rows(replay), len(store.notifications)) == before


def test_a_score_with_merged_from_merges_like_lead_merged() -> None:
    replay = Replay(make_config())
    run(
        replay,
        score(E, 0),
        score(P, 1),
        score(E, 2, merged_from=[P], identifiers=[E, P], newly=False),
    )
    assert sorted(rows(replay)) == [(E, 1, "ana", None), (E, 2, "ben", "merged")]


def test_a_score_of_an_absorbed_profile_after_the_merge_routes_nothing() -> None:
    replay = Replay(make_config())
    run(replay, score(E, 0), merged(E, [P], [E, P], 2))
    [decision] = replay.apply([score(P, 1)], at(3)).decisions
    assert decision is None
    assert rows(replay) == [(E, 1, "ana", None)]


def test_an_absorbed_profile_routed_alone_is_the_survivors_with_its_routed_lead() -> None:
    replay = Replay(make_config())
    run(replay, score(P, 0), merged(E, [P], [E, P], 2))
    assert rows(replay) == [(E, 1, "ana", None)]
    [assignment] = replay.store.events
    assert assignment.subject == P  # published before the merge
    # An escalation of it, under either key, reassigns the person under the survivor's key.
    assignment_id = derived_event_id("assignment", f"score-{P}-0")
    routed = replay.apply([escalation(P, assignment_id, "ana", 10)], at(10))
    [decision] = routed.decisions
    assert decision is not None
    assert decision.rep_id == "ben"
    assert rows(replay) == [(E, 1, "ana", "escalated"), (E, 2, "ben", None)]
    [reassigned] = routed.writes.events
    assert reassigned.type == "lead.reassigned"
    assert reassigned.subject == E
    assert isinstance(reassigned.data, LeadAssigned)
    assert reassigned.data.lead_key == E


def test_an_outcome_by_phone_closes_the_assignment_made_under_the_email() -> None:
    replay = Replay(make_config())
    # One form with both: the email's key is the lead's, the phone an identifier of it.
    run(replay, score(E, 0, identifiers=[E, P]), merged(E, [], [E, P], 0))
    run(replay, outcome([P], "won", 30))
    assert rows(replay) == [(E, 1, "ana", "won")]
    assert replay.store.assignments[0].converted_at == at(30)


def test_an_outcome_finds_the_person_the_router_knows_among_its_keys() -> None:
    replay = Replay(make_config())
    run(replay, score(P, 0))
    # The CRM names an email scoring never saw first, and the phone the lead came by.
    run(replay, outcome([X, P], "rejected", 30))
    assert rows(replay) == [(P, 1, "ana", "rejected")]
    # Nobody known by any of its keys: nothing to close, nothing fails.
    run(replay, outcome([X], "lost", 31))
    assert rows(replay) == [(P, 1, "ana", "rejected")]


@pytest.mark.parametrize("secret", SECRETS, ids=[f"secret{n}" for n in range(len(SECRETS))])
def test_a_batch_with_everything_decides_as_batches_of_one(secret: str) -> None:
    """Whatever the installation's secret: the assignments of one batch share their
    `assigned_at`, and the one the batch decided first is the one a merge keeps."""
    keys = LeadKeys(secret)
    e, p, q = keys.key(EMAIL), keys.key(PHONE), keys.key(PHONE_2)
    events = [
        score(e, 0),
        score(p, 1),
        score(q, 2),
        merged(e, [p], [e, p], 3),
        outcome([p], "converted", 4),
        merged(e, [p, q], [e, p, q], 5),
        outcome([q], "won", 6),
    ]
    alone, together = Replay(make_config()), Replay(make_config())
    run(alone, *events)
    together.apply(events, at(0))
    assert rows(alone) == rows(together)
    # Q's assignment was the person's one live assignment when Q's merge came: it stays,
    # and the person's conversion (reported by phone since Q was assigned) closes it.
    assert sorted(rows(alone)) == [
        (e, 1, "ana", "converted"),
        (e, 2, "ben", "merged"),
        (e, 3, "chloe", "converted"),
    ]


@pytest.mark.parametrize("secret", SECRETS, ids=[f"secret{n}" for n in range(len(SECRETS))])
def test_of_two_profiles_assigned_in_one_batch_a_merge_keeps_the_first(secret: str) -> None:
    """Both assignments have the batch's `assigned_at`: the one decided first stays, as it
    would have in batches of one, and both `lead.assigned` say which came first."""
    keys = LeadKeys(secret)
    e, p = keys.key(EMAIL), keys.key(PHONE)
    for first, second in ((e, p), (p, e)):
        replay = Replay(make_config())
        replay.apply([score(first, 0), score(second, 1)], at(1))
        replay.apply([merged(e, [p], [e, p], 2)], at(2))
        kept = {r.assignment_id: r.close_reason for r in replay.store.assignments}
        assert kept == {
            derived_event_id("assignment", f"score-{first}-0"): None,
            derived_event_id("assignment", f"score-{second}-1"): "merged",
        }
        published = [event.data for event in replay.store.events]
        assert [(a.lead_key, a.batch_position) for a in assigned(published)] == [
            (first, 0),
            (second, 1),
        ]


def test_an_outcome_reported_before_the_merge_closes_the_kept_assignment_too() -> None:
    """As the SLA monitor closes the kept window: the person's outcome, by whichever key."""
    replay = Replay(make_config())
    run(replay, score(E, 0), score(P, 1), outcome([P], "rejected", 2), merged(E, [P], [E, P], 3))
    assert sorted(rows(replay)) == [(E, 1, "ana", "rejected"), (E, 2, "ben", "rejected")]
    assert replay.store.assignments[0].closed_at == at(2)
    # An outcome from before the kept assignment was made is not the kept one's.
    early = Replay(make_config())
    run(early, score(P, 0), outcome([P], "lost", 1), score(E, 2), merged(E, [P], [E, P], 3))
    assert sorted(rows(early)) == [(E, 1, "ben", None), (E, 2, "ana", "lost")]


def test_a_chain_of_merges_arriving_backwards_ends_under_the_final_survivor() -> None:
    replay = Replay(make_config())
    run(replay, score(Q, 0), score(P, 1))
    # E absorbs Q (which had absorbed P): the later merge arrives first.
    run(replay, merged(E, [P, Q], [E, P, Q], 5), merged(Q, [P], [P, Q], 3))
    assert sorted(rows(replay)) == [(E, 1, "ana", None), (E, 2, "ben", "merged")]
    assert {replay.store.person(k) for k in (P, Q, E)} == {E}


# Any order, the same person: two profiles, their merge, outcomes.

DACH = Lead(company=Company(size=50), country="DE")  # always felix: the decision for E


def history() -> dict[str, list[Envelope]]:
    """Each key's events in the order scoring and the CRM produced them."""
    return {
        E: [
            score(E, 0, lead=DACH),
            merged(E, [P], [E, P], 3),
            score(E, 3, merged_from=[P], identifiers=[E, P], newly=False, lead=DACH),
        ],
        P: [score(P, 1)],
        Q: [score(Q, 2)],
        "later": [
            merged(E, [P, Q], [E, P, Q], 5),
            score(E, 5, merged_from=[P, Q], identifiers=[E, P, Q], newly=False, lead=DACH),
        ],
    }


def person_state(store: InMemoryRoutingStore) -> dict[str, Any]:
    """What the router knows of the person in the end, whatever the order it learnt it in."""
    rows = store.assignments
    live = [r for r in rows if r.close_reason not in ("merged",)]
    open_leads, _ = _tallies(store, ["ana", "ben", "chloe", "felix"])
    return {
        "persons": {k: store.person(k) for k in (E, P, Q)},
        "keys": {r.lead_key for r in rows} | {d.assignment.lead_key for d in store.decided},
        "kept": [(r.assignment_id, r.rep_id, r.close_reason, r.converted_at) for r in live],
        "open": open_leads,
        "routed": sorted((key, lead.lead_key) for key, lead in store._routed.items()),
        "merged_open": [r for r in rows if r.close_reason == "merged" and r.closed_at is None],
    }


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), st.sampled_from(["phone", "absorbed", "email"]))
def test_any_order_of_the_same_events_leaves_the_same_person(
    rng: random.Random, named_by: str
) -> None:
    """Each key's events keep their order (a Kafka key's order); keys interleave at random.
    Outcomes come once the router knows the merge (before, an outcome closes the assignment
    it was reported under, as the CRM said)."""
    queues = history()
    order: list[Envelope] = []
    while any(queues.values()):
        key = rng.choice([k for k, q in queues.items() if q and (k != "later" or not queues[E])])
        order.append(queues[key].pop(0))
    keys = {"phone": [P], "absorbed": [Q], "email": [E]}[named_by]
    order += [outcome(keys, "converted", 10), outcome([P, E], "won", 11)]
    replay = Replay(make_config())
    for event in order:
        replay.apply([event], event.time)

    canonical = Replay(make_config())
    for events in history().values():
        for event in events:
            canonical.apply([event], event.time)
    for event in order[-2:]:
        canonical.apply([event], event.time)

    got = person_state(replay.store)
    assert got == person_state(canonical.store)
    assert got["persons"] == {E: E, P: E, Q: E}
    assert got["keys"] == {E}
    assert got["kept"] == [
        (derived_event_id("assignment", f"score-{E}-0"), "felix", "converted", at(10))
    ]


def _tallies(store: InMemoryRoutingStore, reps: Sequence[str] = ("ana", "ben", "chloe")) -> Any:
    return complete(store.tallies(list(reps), [at(0)]))
