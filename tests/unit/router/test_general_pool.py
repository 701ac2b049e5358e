"""The general pool, in memory: leads waiting in a team's pool, claimed first come first
served, and acted on once when nobody claimed them in time.

The same use cases run on the database (SQLite and PostgreSQL, concurrent claims
included) in `tests/integration/test_router_pool.py`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from leadflow.coroutines import complete
from leadflow.events import (
    Company,
    Envelope,
    Lead,
    LeadActivity,
    LeadAssigned,
    LeadMerged,
    LeadPooled,
    SlaAlert,
    new_event,
)
from leadflow_router import claims, service
from leadflow_router.claims import Claimed, ClaimRefused, Unclaimed
from leadflow_router.replay import Replay
from tests.fixtures.routing import NOW, make_config, scored

E = "lk_pool_email"
P = "lk_pool_phone"
BIG = Company(size=5000, name="Northwind")  # the enterprise rule: ana, ben, chloe


def pooled(**pool: Any) -> Any:
    return make_config(teams={"enterprise": {"pool": {"unclaimed_after": "15m", **pool}}})


def at(minutes: float) -> Any:
    return NOW + timedelta(minutes=minutes)


def score(key: str, minutes: float, lead: Lead | None = None) -> Envelope:
    data = scored(lead or Lead(company=BIG), lead_key=key, at=at(minutes))
    return new_event(
        "lead.scored", data, source="/test", time=at(minutes), event_id=f"s-{key}-{minutes}"
    )


def run(replay: Replay, *events: Envelope) -> None:
    for event in events:
        replay.apply([event], event.time)


def rows(replay: Replay) -> list[tuple[str, int, str, str | None, str | None]]:
    """Every assignment row as (lead key, seq, status, rep, close reason)."""
    return [
        (r.lead_key, r.seq, r.status, r.rep_id, r.close_reason) for r in replay.store.assignments
    ]


def claim(replay: Replay, key: str, rep_id: str, minutes: float = 3) -> Claimed:
    return complete(claims.claim_lead(replay.store, replay.config, key, rep_id, at(minutes)))


def refused(replay: Replay, key: str, rep_id: str) -> ClaimRefused:
    store = replay.store
    before = (rows(replay), len(store.events), len(store.notifications))
    with pytest.raises(ClaimRefused) as caught:
        claim(replay, key, rep_id)
    assert (rows(replay), len(store.events), len(store.notifications)) == before
    return caught.value


def unclaimed(replay: Replay, minutes: float) -> Unclaimed:
    return complete(claims.act_on_unclaimed(replay.store, replay.config, at(minutes)))


def emails(replay: Replay, since: int = 0) -> list[tuple[str, str]]:
    return [
        (n.target, n.subject) for n in replay.store.notifications[since:] if n.channel == "email"
    ]


def test_a_pool_team_needs_a_positive_unclaimed_after_and_known_policies() -> None:
    with pytest.raises(ValidationError, match="unclaimed_after must be longer than zero"):
        pooled(unclaimed_after="0s")
    with pytest.raises(ValidationError, match="unclaimed_after"):
        make_config(teams={"enterprise": {"pool": {"fallback": "none"}}})
    with pytest.raises(ValidationError, match="sla_starts"):
        pooled(sla_starts="whenever")
    with pytest.raises(ValidationError, match="fallback"):
        pooled(fallback="drop")
    pool = pooled().team("enterprise").pool
    assert pool is not None
    assert (pool.sla_starts, pool.unclaimed_after, pool.fallback) == (
        "claim",
        timedelta(minutes=15),
        "distribute",
    )


def test_a_lead_routed_to_a_pool_waits_there_and_its_reps_hear_of_it() -> None:
    replay = Replay(pooled())
    run(replay, score(E, 0))

    assert rows(replay) == [(E, 1, "pooled", None, None)]
    [event] = replay.store.events
    assert event.type == "lead.pooled"
    assert isinstance(event.data, LeadPooled)
    assert (event.data.team, event.data.unclaimed_at, event.data.sla_starts) == (
        "enterprise",
        at(15),
        "claim",
    )
    assert event.data.reason.endswith("it waits in the team's pool for a rep to claim it")
    assert sorted(target for target, _ in emails(replay)) == [
        "ana@example.com",
        "ben@example.com",
        "chloe@example.com",
    ]
    # No turn was taken: the next lead of a team without a pool would start at ana.
    assert replay.store.decided[-1].decision.method == "pool"
    [entry] = replay.store.pooled.values()
    assert (entry.team, entry.pooled_at, entry.due_at) == ("enterprise", at(0), at(15))


def test_the_first_claim_wins_and_the_second_gets_a_refusal_naming_the_holder() -> None:
    replay = Replay(pooled())
    run(replay, score(E, 0))
    sent = len(replay.store.notifications)

    taken = claim(replay, E, "ben", minutes=3)

    assert rows(replay) == [
        (E, 1, "pooled", None, "claimed"),
        (E, 2, "assigned", "ben", None),
    ]
    assert (taken.lead_key, taken.assignment.rep_id, taken.entry.seq) == (E, "ben", 1)
    event = replay.store.events[-1]
    assert event.type == "lead.assigned"
    assert isinstance(event.data, LeadAssigned)
    assert event.data.rep_id == "ben"
    assert event.data.assigned_at == at(3)
    assert event.data.clock_from is None  # the clock starts at the claim
    assert event.data.reason == "claimed by Ben Carter from team 'enterprise''s pool after 3 min"
    assert replay.store.decided[-1].kind == "claim"
    assert emails(replay, sent) == [("ben@example.com", "New lead for you: Northwind")]

    second = refused(replay, E, "ana")
    assert (second.status, second.code) == (409, "already_claimed")
    assert "already claimed by Ben Carter (ben)" in second.detail


def test_an_arrival_policy_starts_the_claimers_clock_when_the_lead_arrived() -> None:
    replay = Replay(pooled(sla_starts="arrival"))
    run(replay, score(E, 0))
    claim(replay, E, "chloe", minutes=7)
    event = replay.store.events[-1]
    assert isinstance(event.data, LeadAssigned)
    assert (event.data.assigned_at, event.data.clock_from) == (at(7), at(0))


def test_claims_the_router_refuses() -> None:
    replay = Replay(pooled())
    small = Lead(company=Company(size=20))  # the fallback team smb: no pool
    run(replay, score(E, 0), score(P, 1, small))

    outsider = refused(replay, E, "dev")
    assert (outsider.status, outsider.code) == (403, "not_in_team")
    assert "Dev Patel is not in team 'enterprise'" in outsider.detail
    assert refused(replay, "lk_nobody", "ana").status == 404
    assigned = refused(replay, P, "dev")  # routed to dev by smb's round robin, not pooled
    assert (assigned.status, assigned.code) == (404, "not_pooled")

    replay.store.overrides["ana"] = {"active": False}
    away = refused(replay, E, "ana")
    assert (away.status, away.code) == (422, "rep_unavailable")


def test_a_lead_nobody_claimed_in_time_alerts_the_manager_once_and_is_distributed() -> None:
    replay = Replay(pooled(sla_starts="arrival"))
    run(replay, score(E, 0))

    assert unclaimed(replay, 14.9) == Unclaimed([], 0)
    sent = len(replay.store.notifications)
    done = unclaimed(replay, 16)

    entry_id = replay.store.assignments[0].assignment_id
    assert done == Unclaimed([entry_id], 1)
    assert rows(replay) == [
        (E, 1, "pooled", None, "unclaimed"),
        (E, 2, "assigned", "ana", None),  # the team's round robin: its first turn
    ]
    event = replay.store.events[-1]
    assert event.type == "lead.assigned"
    assert isinstance(event.data, LeadAssigned)
    assert event.data.clock_from == at(0)  # arrival: the wait counts
    assert event.data.reason.startswith(
        "nobody claimed it from team 'enterprise''s pool within 16 min; "
        "rule 'enterprise-size' sends it to team 'enterprise'"
    )
    assert replay.store.decided[-1].kind == "unclaimed"
    assert sorted(emails(replay, sent)) == [
        ("ana@example.com", "New lead for you: Northwind"),
        ("grace@example.com", "Lead unclaimed in the enterprise pool for 16 min"),
    ]
    # Exactly once: a second pass (another router, or the next tick) finds nothing.
    assert unclaimed(replay, 17) == Unclaimed([], 0)
    assert len(replay.store.events) == 2
    assert refused(replay, E, "ben").code == "left_pool"


def test_with_fallback_none_the_manager_hears_once_and_the_lead_keeps_waiting() -> None:
    replay = Replay(pooled(fallback="none"))
    run(replay, score(E, 0))
    sent = len(replay.store.notifications)

    assert unclaimed(replay, 20).distributed == 0
    assert unclaimed(replay, 40) == Unclaimed([], 0)

    assert rows(replay) == [(E, 1, "pooled", None, None)]
    assert emails(replay, sent) == [
        ("grace@example.com", "Lead unclaimed in the enterprise pool for 20 min")
    ]
    assert "keeps waiting in the pool" in replay.store.notifications[-1].body
    assert claim(replay, E, "ana", minutes=41).assignment.rep_id == "ana"
    assert unclaimed(replay, 60) == Unclaimed([], 0)


def test_a_claimed_lead_nobody_acts_on_in_time_is_not_touched_by_the_timer() -> None:
    replay = Replay(pooled())
    run(replay, score(E, 0))
    claim(replay, E, "ben", minutes=3)
    assert unclaimed(replay, 30) == Unclaimed([], 0)
    assert rows(replay)[-1] == (E, 2, "assigned", "ben", None)


def test_an_escalated_claim_goes_through_the_teams_distribution_not_back_to_the_pool() -> None:
    replay = Replay(pooled())
    run(replay, score(E, 0))
    taken = claim(replay, E, "ana", minutes=1)
    alert = SlaAlert(
        lead_key=E,
        assignment_id=taken.assignment.assignment_id,
        stage="escalated",
        policy="hot",
        rep_id="ana",
        rep_name="Ana Silva",
        team="enterprise",
        manager_email="grace@example.com",
        assigned_at=at(1),
        due_at=at(6),
        fired_at=at(20),
        late_by_s=840,
        message="escalated",
    )
    run(replay, new_event("sla.escalated", alert, source="/t", time=at(20), event_id="esc"))
    assert rows(replay)[-1] == (E, 3, "assigned", "ben", None)  # round robin, ana excluded
    late = refused(replay, E, "chloe")
    assert late.code == "already_claimed"
    assert late.detail.startswith(f"Lead {E!r} was already claimed by Ana Silva (ana) at ")
    assert late.detail.endswith("; it is with Ben Carter (ben) now.")


def test_a_pooled_lead_absorbed_by_a_merge_leaves_the_pool() -> None:
    replay = Replay(pooled())
    small = Lead(company=Company(size=20))
    run(replay, score(P, 0, small), score(E, 1))  # P: assigned to dev; E: pooled
    merge = LeadMerged(survivor=E, absorbed=[P], identifiers=[E, P], merged_at=at(2))
    run(replay, new_event("lead.merged", merge, source="/t", time=at(2), event_id="m"))

    # The earlier live row is the assignment: the pool entry closes as merged.
    assert sorted(rows(replay)) == [
        (E, 1, "pooled", None, "merged"),
        (E, 2, "assigned", "dev", None),
    ]
    assert refused(replay, E, "ana").code == "left_pool"
    assert unclaimed(replay, 30) == Unclaimed([], 0)


def test_a_pooled_lead_reassigned_by_hand_leaves_the_pool() -> None:
    replay = Replay(pooled())
    run(replay, score(E, 0))

    moved = complete(
        service.reassign_by_hand(
            replay.store, replay.config, E, "chloe", "knows them", at(5), actor="ops"
        )
    )

    assert rows(replay) == [
        (E, 1, "pooled", None, "reassigned"),
        (E, 2, "assigned", "chloe", None),
    ]
    assert moved.assignment.rep_id == "chloe"
    event = replay.store.events[-1]
    assert isinstance(event.data, LeadAssigned)
    assert event.data.reason.startswith("ops reassigned it by hand (knows them), from team")
    assert refused(replay, E, "ana").code == "left_pool"
    assert unclaimed(replay, 30) == Unclaimed([], 0)


def test_a_pooled_lead_the_crm_closes_leaves_the_pool() -> None:
    replay = Replay(pooled())
    run(replay, score(E, 0))
    rejected = LeadActivity(lead_key=E, activity="rejected", occurred_at=at(2), source="crm")
    run(replay, new_event("lead.rejected", rejected, source="/t", time=at(2), event_id="r"))

    assert rows(replay) == [(E, 1, "pooled", None, "rejected")]
    left = refused(replay, E, "ana")
    assert (left.code, left.detail) == (
        "left_pool",
        f"Lead {E!r} no longer waits in the pool (rejected): nobody holds it.",
    )
    assert unclaimed(replay, 30) == Unclaimed([], 0)
