"""Folding events into a lifecycle: what each event says, and that order never matters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.aliases import AliasBook, Merge
from leadflow.config import Reporting
from leadflow.events import (
    Envelope,
    Lead,
    LeadActivity,
    LeadAssigned,
    LeadReceived,
    LeadScored,
    LeadUnassigned,
    new_event,
)
from leadflow_sla.reporting.lifecycle import (
    Handoff,
    Lifecycle,
    Outcome,
    Scoring,
    Touch,
    apply,
    combine,
    fact_of,
    segment_of,
)
from leadflow_sla.reporting.people import Step
from leadflow_sla.reporting.people import fold as fold_batch

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KEY = "lk_000000000000000000000001"
REPORTING = Reporting.model_validate(
    {
        "segments": [
            {"name": "enterprise", "when": [{"field": "lead.company.size", "gte": 1000}]},
            {"name": "demo", "when": [{"field": "activity", "equals": "demo_request"}]},
        ]
    }
)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def received(at: datetime, **lead: object) -> Envelope:
    activity = str(lead.pop("activity", "form_fill"))
    data = LeadReceived(
        lead_key=KEY,
        source="web",
        source_kind="standard",
        delivery_id="d",
        activity=activity,
        received_at=at,
        lead=Lead.model_validate({"email": "x@y.example", **lead}),
    )
    return new_event("lead.received", data, source="/test", time=at)


def outcome(kind: str, at: datetime, **fields: object) -> Envelope:
    data = LeadActivity(lead_key=KEY, activity=kind, occurred_at=at, source="crm", **fields)
    return new_event(f"lead.{kind}", data, source="/test", time=at)


def test_segment_is_the_first_matching_one_else_the_catch_all() -> None:
    big_demo = {"lead": {"company": {"size": 5000}}, "activity": "demo_request"}
    assert segment_of(REPORTING, big_demo) == "enterprise"
    assert segment_of(REPORTING, {"lead": {}, "activity": "demo_request"}) == "demo"
    assert segment_of(REPORTING, {"lead": {"company": {"size": 20}}}) == "other"


def test_a_received_lead_is_a_touch_with_utm_source_campaign_and_segment() -> None:
    event = received(
        T0,
        company={"size": 2000},
        campaign=" spring-webinar ",
        utm={"source": "linkedin", "campaign": "ignored"},
    )
    assert fact_of(event, REPORTING) == Touch(T0, "linkedin", "spring-webinar", "enterprise")
    plain = received(T0, activity="demo_request", utm={"campaign": "from-utm"})
    assert fact_of(plain, REPORTING) == Touch(T0, "web", "from-utm", "demo")


def test_scored_assigned_and_outcome_events_become_facts() -> None:
    scored = LeadScored(
        lead_key=KEY,
        model_version="v",
        score=80,
        fit=40,
        engagement=40,
        tier="mql",
        qualified=True,
        newly_qualified=True,
        reasons=[],
        scored_at=minutes(1),
        received_at=T0,
        source="web",
        lead=Lead(),
    )
    assigned = LeadAssigned(
        lead_key=KEY,
        assignment_id="a1",
        rep_id="ana",
        rep_name="Ana",
        team="enterprise",
        rule="r",
        tier="mql",
        reason="",
        assigned_at=minutes(2),
        received_at=T0,
    )
    assert fact_of(new_event("lead.scored", scored, source="/t", time=T0), REPORTING) == Scoring(
        minutes(1), T0, "mql", True
    )
    assert fact_of(
        new_event("lead.reassigned", assigned, source="/t", time=T0), REPORTING
    ) == Handoff(minutes(2), "enterprise", "ana", True)
    won = outcome("won", minutes(9), amount=1000.0, profit=300.0)
    assert fact_of(won, REPORTING) == Outcome("won", minutes(9), None, 1000.0, 300.0)
    rejected = outcome("rejected", minutes(5), reason="  No   budget ")
    assert fact_of(rejected, REPORTING) == Outcome("rejected", minutes(5), "No budget")
    queued = LeadUnassigned(
        lead_key=KEY, team="smb", rule="r", tier="mql", reason="", queued_at=T0, received_at=T0
    )
    assert fact_of(new_event("lead.unassigned", queued, source="/t", time=T0), REPORTING) is None


def fold(facts: Sequence[Touch | Scoring | Handoff | Outcome]) -> Lifecycle:
    lifecycle = Lifecycle(KEY)
    for fact in facts:
        lifecycle = apply(lifecycle, fact)
    return lifecycle


FACTS: list[Touch | Scoring | Handoff | Outcome] = [
    Touch(minutes(0), "google", "search", "smb"),
    Touch(minutes(30), "linkedin", None, "enterprise"),
    Touch(minutes(30), "email", None, "smb"),
    Scoring(minutes(0.1), minutes(0), "nurture", False),
    Scoring(minutes(30.1), minutes(30), "mql", True),
    Scoring(minutes(30.2), minutes(30), "mql", True),
    Handoff(minutes(31), "enterprise", "ana", False, first=True),
    Handoff(minutes(32), "smb", "dev", False, first=True),  # a second profile's, merged
    Handoff(minutes(90), "enterprise", "ben", True),
    Outcome("contacted", minutes(40)),
    Outcome("contacted", minutes(35)),
    Outcome("rejected", minutes(50), "no budget"),
    Outcome("rejected", minutes(60), "not a decision maker"),
    Outcome("accepted", minutes(70)),
    Outcome("converted", minutes(80)),
    Outcome("won", minutes(100), None, 1000.5, None),
    Outcome("won", minutes(200), None, 2000.0, 1500.0),
    Outcome("lost", minutes(150), "price"),
]


def test_the_folded_lifecycle_has_firsts_lasts_counts_and_sums() -> None:
    lc = fold(FACTS)
    assert (lc.touches, lc.first_touch_at, lc.first_source, lc.first_campaign) == (
        3,
        minutes(0),
        "google",
        "search",
    )
    # Two touches at the same instant: the tie is broken by the values, not by arrival.
    assert (lc.last_touch_at, lc.last_source, lc.last_segment) == (
        minutes(30),
        "linkedin",
        "enterprise",
    )
    assert (lc.tier, lc.mql_at, lc.ready_at) == ("mql", minutes(30.1), minutes(30))
    assert (lc.assigned_at, lc.rep_id, lc.owner_since, lc.reassignments) == (
        minutes(31),
        "ben",
        minutes(90),
        1,
    )
    assert (lc.contacted_at, lc.contacts) == (minutes(35), 2)
    assert (lc.rejected_at, lc.rejection_reason) == (minutes(60), "not a decision maker")
    assert (lc.accepted_at, lc.converted_at, lc.won_at) == (minutes(70), minutes(80), minutes(100))
    assert (lc.won_deals, lc.revenue, lc.reported_profit, lc.revenue_without_profit) == (
        2,
        3000.5,
        1500.0,
        1000.5,
    )
    assert (lc.lost_at, lc.lost_reason) == (minutes(150), "price")


@settings(max_examples=200, deadline=None)
@given(st.permutations(FACTS))
def test_any_order_of_the_same_events_gives_the_same_lifecycle(
    order: list[Touch | Scoring | Handoff | Outcome],
) -> None:
    assert fold(order) == fold(FACTS)


def test_a_later_score_below_the_bar_does_not_undo_the_mql_moment() -> None:
    lc = fold(
        [Scoring(minutes(1), T0, "mql", True), Scoring(minutes(5), minutes(4), "watch", False)]
    )
    assert (lc.tier, lc.mql_at, lc.ready_at) == ("watch", minutes(1), T0)


def test_the_row_round_trip_keeps_every_field() -> None:
    lc = replace(fold(FACTS), lead_key=KEY)
    assert Lifecycle.from_row({**lc.as_row(), "updated_at": T0}) == lc


OTHER = "lk_000000000000000000000002"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([KEY, OTHER]), min_size=len(FACTS), max_size=len(FACTS)))
def test_a_batch_folds_each_lead_as_its_own_events_would(owners: list[str]) -> None:
    """Facts of two leads interleaved in one batch, the first half folded by an earlier batch."""
    batch = list(zip(owners, FACTS, strict=True))
    half = len(batch) // 2
    stored = fold_batch({}, batch[:half]).lifecycles
    folded = fold_batch(stored, batch[half:]).lifecycles
    for key in {KEY, OTHER}:
        mine = [fact for owner, fact in batch if owner == key]
        expected = replace(fold(mine), lead_key=key)
        assert {**stored, **folded}.get(key, Lifecycle(key)) == expected
    # Only the leads the second half touched come back (to be written).
    assert set(folded) == set(owners[half:])
    assert stored.keys() == set(owners[:half])


# --- one person, one lifecycle ----------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=len(FACTS), max_size=len(FACTS)))
def test_combining_two_keys_lifecycles_is_folding_all_their_facts_into_one(
    mine: list[bool],
) -> None:
    """However a person's facts were split between two keys, combining the two lifecycles
    gives the lifecycle of all the facts."""
    survivor = [fact for fact, here in zip(FACTS, mine, strict=True) if here]
    absorbed = [fact for fact, here in zip(FACTS, mine, strict=True) if not here]
    combined = combine(fold(survivor), replace(fold(absorbed), lead_key=OTHER))
    assert combined == fold(FACTS)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([KEY, OTHER]), min_size=len(FACTS), max_size=len(FACTS)),
    st.integers(0, len(FACTS)),
    st.integers(1, len(FACTS)),
)
def test_a_merge_anywhere_among_the_facts_gives_one_lifecycle_of_them_all(
    keys: list[str], position: int, split: int
) -> None:
    """Facts under either key, the merge anywhere among them, over two batches."""
    steps: list[Step] = [(key, fact) for key, fact in zip(keys, FACTS, strict=True)]
    steps.insert(position, Merge(KEY, (OTHER,), T0))
    aliases = AliasBook()
    first = fold_batch({}, steps[:split], aliases)
    second = fold_batch(first.lifecycles, steps[split:], AliasBook(aliases.rows()))
    stored = {**first.lifecycles, **second.lifecycles}
    for key in first.dropped | second.dropped:
        stored.pop(key, None)

    assert stored == {KEY: fold(FACTS)}


def test_of_two_first_assignments_the_earlier_owner_stays_a_reassignment_wins() -> None:
    ana = Handoff(minutes(1), "enterprise", "ana", False, first=True)
    ben = Handoff(minutes(2), "enterprise", "ben", False, first=True)
    chloe = Handoff(minutes(90), "enterprise", "chloe", True)
    dev = Handoff(minutes(0), "smb", "dev", False)  # from the queue, after an escalation

    assert (fold([ben, ana]).rep_id, fold([ana, ben]).rep_id) == ("ana", "ana")
    assert {fold(order).rep_id for order in ([ana, ben, chloe], [chloe, ben, ana])} == {"chloe"}
    lc = fold([ana, ben, chloe])
    assert (lc.assigned_at, lc.owner_since, lc.owner_first, lc.reassignments) == (
        minutes(1),
        minutes(90),
        False,
        1,
    )
    # A hand-off that is not a first assignment beats any first one.
    assert fold([ana, dev]).rep_id == fold([dev, ana]).rep_id == "dev"


def test_a_first_assignment_with_reps_before_it_is_not_a_first_hand_off() -> None:
    data = LeadAssigned(
        lead_key=KEY,
        assignment_id="a2",
        rep_id="ben",
        rep_name="Ben",
        team="enterprise",
        rule="r",
        tier="mql",
        reason="",
        assigned_at=minutes(9),
        received_at=T0,
        previous_rep_ids=["ana"],
    )
    from_queue = new_event("lead.assigned", data, source="/t", time=T0)
    first = new_event(
        "lead.assigned", data.model_copy(update={"previous_rep_ids": []}), source="/t", time=T0
    )
    assert fact_of(from_queue, REPORTING) == Handoff(minutes(9), "enterprise", "ben", False)
    assert fact_of(first, REPORTING) == Handoff(minutes(9), "enterprise", "ben", False, True)


def test_an_outcome_goes_to_the_first_of_its_keys_reports_know() -> None:
    """The CRM named an email nobody sent and the phone the lead came in by: the phone's
    lifecycle gets the contact, and the email's row (created empty to lock it) goes."""
    touch = Touch(minutes(0), "ivr", None, "smb")
    stored = {OTHER: apply(Lifecycle(OTHER), touch), KEY: Lifecycle(KEY)}
    contact = Outcome("contacted", minutes(3))

    folded = fold_batch(stored, [((KEY, OTHER), contact)])

    assert folded.lifecycles == {OTHER: apply(apply(Lifecycle(OTHER), touch), contact)}
    assert folded.dropped == {KEY}
    # Known by neither key: the first one.
    assert set(fold_batch({}, [((KEY, OTHER), contact)]).lifecycles) == {KEY}


def test_a_lifecycle_left_under_a_key_that_means_another_person_now_moves_there() -> None:
    aliases = AliasBook()
    aliases.apply(Merge(KEY, (OTHER,), T0))
    contact = Outcome("contacted", minutes(3))
    stored = {KEY: fold(FACTS), OTHER: apply(Lifecycle(OTHER), contact)}

    folded = fold_batch(stored, [], AliasBook(aliases.rows()))

    assert folded.dropped == {OTHER}
    assert folded.lifecycles[KEY] == apply(fold(FACTS), contact)
