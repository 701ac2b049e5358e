"""Leads moved outside routing, in memory: a manager's reassignment by hand, and a rep
marked out of office whose team redistributes their open, uncontacted leads.

The same use cases run on the database through the admin API in
`tests/integration/test_router_reassign.py`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from leadflow.coroutines import complete
from leadflow.events import LeadAssigned
from leadflow_router import service
from leadflow_router.memory import InMemoryRoutingStore
from leadflow_router.replay import Replay
from leadflow_router.service import HandedOver, ReassignRefused
from tests.fixtures.routing import NOW, make_config
from tests.unit.router.test_merges import (
    E,
    P,
    X,
    at,
    escalation,
    merged,
    outcome,
    rows,
    run,
    score,
)

CONFIG = make_config()
REDISTRIBUTING = make_config(teams={"enterprise": {"redistribute_on_absence": True}})


def by_hand(replay: Replay, key: str, rep_id: str, minutes: float = 10) -> HandedOver:
    return complete(
        service.reassign_by_hand(
            replay.store, replay.config, key, rep_id, "customer asked", at(minutes), actor="ops"
        )
    )


def refused(replay: Replay, key: str, rep_id: str) -> ReassignRefused:
    before = (rows(replay), len(replay.store.events), len(replay.store.notifications))
    with pytest.raises(ReassignRefused) as caught:
        by_hand(replay, key, rep_id)
    # A refusal changes nothing.
    assert (rows(replay), len(replay.store.events), len(replay.store.notifications)) == before
    return caught.value


def absent(replay: Replay, rep_id: str, minutes: float = 10) -> tuple[list[HandedOver], list[str]]:
    store = replay.store
    store.absences.setdefault(rep_id, []).append((at(minutes - 1), at(minutes + 600), "sick"))
    return complete(service.redistribute_absent(store, replay.config, rep_id, at(minutes)))


def notes(store: InMemoryRoutingStore, since: int) -> list[tuple[str, str]]:
    return [(n.target, n.subject) for n in store.notifications[since:] if n.channel == "email"]


def test_a_lead_reassigned_by_hand_moves_with_its_history_and_both_reps_hear() -> None:
    replay = Replay(CONFIG)
    run(replay, score(E, 0))  # ana, by round robin
    sent = len(replay.store.notifications)

    moved = by_hand(replay, E, "chloe")

    assert rows(replay) == [(E, 1, "ana", "reassigned"), (E, 2, "chloe", None)]
    assert (moved.previous.rep_id, moved.assignment.rep_id, moved.assignment.team) == (
        "ana",
        "chloe",
        "enterprise",
    )
    event = replay.store.events[-1]
    assert event.type == "lead.reassigned"
    assert isinstance(event.data, LeadAssigned)
    assert (event.data.rep_id, event.data.previous_rep_ids) == ("chloe", ["ana"])
    assert event.data.escalations == 0  # a reassignment by hand is no escalation
    assert event.data.assignment_id == moved.assignment.assignment_id
    assert notes(replay.store, sent) == [
        ("chloe@example.com", f"New lead reassigned to you: {E}"),
        ("ana@example.com", f"Lead reassigned: {E} is with Chloé Martin now"),
    ]
    assert "ops reassigned it by hand (customer asked)" in replay.store.notifications[-1].body
    [decided] = replay.store.decided[-1:]
    assert (decided.kind, decided.decision.rep_id) == ("manual", "chloe")
    # Open counts follow: ana has nothing open, chloe one.
    open_leads, _ = complete(replay.store.tallies(["ana", "chloe"], []))
    assert open_leads == {"ana": 0, "chloe": 1}
    # A second hand-over keeps every previous rep.
    by_hand(replay, E, "ben", minutes=20)
    last = replay.store.events[-1].data
    assert isinstance(last, LeadAssigned)
    assert last.previous_rep_ids == ["ana", "chloe"]


def test_any_key_of_the_person_reassigns_their_lead_under_the_survivor() -> None:
    replay = Replay(CONFIG)
    run(replay, score(E, 0), merged(E, [P], [E, P], 1))

    moved = by_hand(replay, P, "ben")

    assert moved.lead_key == E
    assert rows(replay) == [(E, 1, "ana", "reassigned"), (E, 2, "ben", None)]
    assert replay.store.events[-1].subject == E


def test_a_rep_outside_the_leads_teams_can_take_it_when_its_rules_name_them() -> None:
    # A German enterprise lead: the enterprise team takes it, felix is named by a rule
    # further down; dev only by another, never reached.
    config = make_config(
        rules=[
            {
                "name": "enterprise-size",
                "team": "enterprise",
                "when": [{"field": "lead.company.size", "gte": 1000}],
                "when_unavailable": "next_rule",
            },
            {"name": "to-felix", "rep": "felix", "when": []},
        ]
    )
    replay = Replay(config)
    run(replay, score(E, 0))

    moved = by_hand(replay, E, "felix")

    assert (moved.assignment.rep_id, moved.assignment.team) == ("felix", "smb")


@pytest.mark.parametrize(
    ("key", "rep_id", "status", "code"),
    [
        (X, "ben", 404, "unknown_lead"),
        (E, "nobody", 422, "unknown_rep"),
        (E, "ana", 422, "same_rep"),
        (E, "dev", 422, "rep_not_eligible"),  # smb: the enterprise rule places the lead
        (E, "felix", 422, "rep_not_eligible"),  # in no team, named by no rule it reaches
    ],
)
def test_reassignments_the_router_refuses(key: str, rep_id: str, status: int, code: str) -> None:
    replay = Replay(CONFIG)
    run(replay, score(E, 0))

    problem = refused(replay, key, rep_id)

    assert (problem.status, problem.code) == (status, code)


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("converted", 409, "lead_closed"), ("rejected", 409, "lead_closed")],
)
def test_a_closed_lead_is_not_reassigned(kind: str, status: int, code: str) -> None:
    replay = Replay(CONFIG)
    run(replay, score(E, 0), outcome([E], kind, 5))

    problem = refused(replay, E, "ben")

    assert (problem.status, problem.code) == (status, code)
    assert "converted" in problem.detail or "rejected" in problem.detail


def test_a_queued_lead_is_not_assigned_to_reassign() -> None:
    everyone_away = {r: {"active": False} for r in ("ana", "ben", "chloe")}
    replay = Replay(make_config(reps=everyone_away))
    run(replay, score(E, 0))
    assert rows(replay) == [(E, 1, None, None)]

    problem = refused(replay, E, "ben")

    assert (problem.status, problem.code) == (404, "not_assigned")
    assert "waits in the queue" in problem.detail


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"overrides": {"active": False}}, "inactive"),
        ({"absences": [(NOW, NOW + timedelta(days=2), "holiday")]}, "out of office"),
    ],
)
def test_a_rep_who_is_away_cannot_be_given_a_lead(change: dict[str, Any], why: str) -> None:
    replay = Replay(CONFIG)
    run(replay, score(E, 0))
    store = replay.store
    if "overrides" in change:
        store.overrides["ben"] = change["overrides"]
    else:
        store.absences["ben"] = change["absences"]

    problem = refused(replay, E, "ben")

    assert (problem.status, problem.code) == (422, "rep_unavailable")
    assert why in problem.detail


def test_a_rep_off_shift_or_at_their_cap_can_still_be_given_a_lead_by_hand() -> None:
    replay = Replay(make_config(reps={"ben": {"max_open": 0}}))
    run(replay, score(E, 0))

    assert by_hand(replay, E, "ben").assignment.rep_id == "ben"


def three_leads_of_ana(config: Any) -> Replay:
    """ana holds A1, A2 and A3 (ben and chloe one lead each in between); A2 was contacted."""
    replay = Replay(config)
    keys = [f"lk_{n}" for n in range(7)]
    run(replay, *(score(key, n) for n, key in enumerate(keys)))
    assert [r.rep_id for r in replay.store.assignments] == [
        "ana",
        "ben",
        "chloe",
        "ana",
        "ben",
        "chloe",
        "ana",
    ]
    run(replay, outcome(["lk_3"], "contacted", 8))
    return replay


def test_marking_a_rep_out_of_office_hands_their_uncontacted_leads_to_the_team() -> None:
    replay = three_leads_of_ana(REDISTRIBUTING)
    sent = len(replay.store.notifications)

    moved, stayed = absent(replay, "ana")

    assert stayed == []
    # Round robin carries on from chloe's turn, ana skipped: ben, then chloe.
    assert [(m.lead_key, m.assignment.rep_id) for m in moved] == [
        ("lk_0", "ben"),
        ("lk_6", "chloe"),
    ]
    current = {r.lead_key: (r.rep_id, r.close_reason) for r in replay.store.assignments}
    assert current["lk_3"] == ("ana", None)  # contacted: stays
    assert [r for r in rows(replay) if r[0] in ("lk_0", "lk_6")] == [
        ("lk_0", 1, "ana", "out_of_office"),
        ("lk_6", 1, "ana", "out_of_office"),
        ("lk_0", 2, "ben", None),
        ("lk_6", 2, "chloe", None),
    ]
    events = replay.store.events[-2:]
    assert [(e.type, e.data.previous_rep_ids) for e in events] == [  # type: ignore[union-attr]
        ("lead.reassigned", ["ana"]),
        ("lead.reassigned", ["ana"]),
    ]
    assert sorted(notes(replay.store, sent)) == [
        ("ana@example.com", "Lead reassigned: lk_0 is with Ben Carter now"),
        ("ana@example.com", "Lead reassigned: lk_6 is with Chloé Martin now"),
        ("ben@example.com", "New lead reassigned to you: lk_0"),
        ("chloe@example.com", "New lead reassigned to you: lk_6"),
    ]
    assert all(
        d.decision.reason.startswith("Ana Silva is out of office")
        for d in replay.store.decided[-2:]
    )
    # The turns moved on: the next lead goes to ben.
    run(replay, score("lk_next", 30))
    assert replay.current("lk_next").rep_id == "ben"  # type: ignore[union-attr]


def test_a_team_that_does_not_redistribute_keeps_an_absent_reps_leads() -> None:
    replay = three_leads_of_ana(CONFIG)

    assert absent(replay, "ana") == ([], [])
    assert [r.close_reason for r in replay.store.assignments] == [None] * 7


def test_a_lead_nobody_else_in_the_team_can_take_stays_with_the_absent_rep() -> None:
    replay = three_leads_of_ana(REDISTRIBUTING)
    replay.store.overrides["ben"] = {"active": False}
    replay.store.overrides["chloe"] = {"max_open": 2}  # already has two

    moved, stayed = absent(replay, "ana")

    assert (moved, stayed) == ([], ["lk_0", "lk_6"])
    assert [r.close_reason for r in replay.store.assignments] == [None] * 7


def test_a_contact_under_another_key_of_the_person_keeps_the_lead() -> None:
    replay = Replay(REDISTRIBUTING)
    run(replay, score(E, 0), merged(E, [P], [E, P], 1), outcome([P], "accepted", 2))

    assert absent(replay, "ana") == ([], [])
    assert rows(replay) == [(E, 1, "ana", None)]


def test_a_contact_before_the_assignment_does_not_count_for_it() -> None:
    replay = Replay(REDISTRIBUTING)
    run(replay, score(E, 0))
    by_hand(replay, E, "ben", minutes=5)
    run(replay, outcome([E], "contacted", 3))  # reported late, made while ana had it

    moved, _ = absent(replay, "ben", minutes=20)

    assert [m.assignment.rep_id for m in moved] == ["chloe"]


def test_a_reassignment_by_hand_after_an_escalation_keeps_the_escalations_count() -> None:
    replay = Replay(CONFIG)
    run(replay, score(E, 0))
    first = replay.current(E)
    assert first is not None
    run(replay, escalation(E, first.assignment_id, "ana", 5))  # to ben

    by_hand(replay, E, "chloe", minutes=10)

    [escalated, manual] = [e.data for e in replay.store.events[-2:]]
    assert isinstance(escalated, LeadAssigned)
    assert isinstance(manual, LeadAssigned)
    assert (escalated.rep_id, escalated.escalations) == ("ben", 1)
    assert (manual.rep_id, manual.previous_rep_ids, manual.escalations) == (
        "chloe",
        ["ana", "ben"],
        1,
    )
