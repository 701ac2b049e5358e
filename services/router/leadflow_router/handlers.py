"""What each router event does to a batch's routing book: route, reassign, dequeue, close (pure).

Handlers are functions of (batch, event): they decide with the pure domain against the
book, change the book, and add what must be written (the assignment, the decision, the
outgoing event and its notifications). The service loads the book before and writes it
back after, so the same handlers serve one event and a thousand.

One person, one key: every key an event names is looked up in the router's aliases, and
the handler works on the person's current key (`RoutingBook.person`), so what the router
writes and publishes after a merge carries the survivor's key. A merge (`lead.merged`, or
the `merged_from` of a `lead.scored`, whichever comes first) moves the absorbed keys'
assignments, decisions and routed lead to the survivor; of two live assignments the earlier
stays and the other closes as `merged` (`keep_one`), both reps being told.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from itertools import count

from leadflow.aliases import Merge, merge_of, person_of
from leadflow.config import LeadflowConfig, tier_rank
from leadflow.events import (
    Envelope,
    LeadActivity,
    LeadAssigned,
    LeadMerged,
    LeadPooled,
    LeadScored,
    LeadUnassigned,
    Payload,
    SlaAlert,
    derived_event_id,
    new_event,
)
from leadflow_router import domain
from leadflow_router.availability import skip_kind
from leadflow_router.book import MERGED, Assignment, Decided, Kind, PoolEntry, RoutingBook
from leadflow_router.metrics import ASSIGNMENTS, END_TO_END, REASSIGNMENTS, SKIPPED
from leadflow_router.notify import (
    NotifyOptions,
    handover_notifications,
    merge_notifications,
    notifications_for,
)
from leadflow_router.pools import Reach, reach
from leadflow_router.rules import match_account

log = logging.getLogger(__name__)

SOURCE = "/leadflow/router"
# Outcomes that end a rep's work on a lead, and whether they count as a conversion (SQL).
OUTCOMES = {"lead.rejected": False, "lead.converted": True, "lead.won": True, "lead.lost": False}
# The close reasons those outcomes leave on an assignment.
FINAL = {kind.removeprefix("lead.") for kind in OUTCOMES}
# Why an assignment closed when its person rose to a higher routed tier and was routed again.
UPGRADED = "upgraded"
# What the CRM reports once the rep has reached the lead: the assignment stays theirs, but
# marking them out of office no longer hands it on.
CONTACTS = ("lead.contacted", "lead.accepted")


class Batch:
    """One batch being applied: the configuration, the moment, the book and what was locked."""

    def __init__(
        self,
        config: LeadflowConfig,
        options: NotifyOptions,
        now: datetime,
        *,
        first_position: int = 0,
    ) -> None:
        self.config = config
        self.options = options
        self.now = now
        self.book = RoutingBook()
        # The `batch_position` of the batch's next assignment: every assignment it makes
        # has `now` as its `assigned_at`, so the order it decided them in tells them apart.
        self._positions = count(first_position)
        # What the batch's decisions may touch, once it is locked and loaded.
        self.locked: Reach | None = None
        self._reaches: dict[int, tuple[LeadScored, Reach]] = {}

    def reach(self, scored: LeadScored) -> Reach:
        """What the decision for this lead may touch (computed once per scored lead)."""
        cached = self._reaches.get(id(scored))
        if cached is not None and cached[0] is scored:
            return cached[1]
        found = reach(self.config, scored, self.now)
        if self.locked is not None and not (
            found.pools <= self.locked.pools and found.reps <= self.locked.reps
        ):
            raise RuntimeError(
                f"lead {scored.lead_key} may be routed outside the routing pools its batch "
                "locked and loaded; it is not routed."
            )
        self._reaches[id(scored)] = (scored, found)
        return found

    def next_position(self) -> int:
        """The place of the assignment the batch decides now among those it made."""
        return next(self._positions)


def routes(config: LeadflowConfig, scored: LeadScored) -> bool:
    """Whether a score may call for routing: its tier is routed (`routing.tiers`, and
    `routing.priority_account_tiers` for a priority account's lead), and for an MQL it has
    just qualified. Whether the person was routed at that tier or a higher one already is
    the router's record to say (`route`)."""
    tier, routing = scored.tier, config.routing
    if tier == "mql" and not scored.newly_qualified:
        return False
    if tier in routing.tiers:
        return True
    if tier not in routing.priority_account_tiers:
        return False
    matched = match_account(config.accounts, scored.lead)
    return matched is not None and matched[0].priority


def upgrades(scored: LeadScored, routed: LeadScored | None) -> bool:
    """Whether a score routes a person the router holds again: it lifts them into a higher
    tier than the one they were last routed at (watch -> mql). A re-score within that tier,
    or below it, changes nothing."""
    return routed is not None and tier_rank(scored.tier) > tier_rank(routed.tier)


def merge_in(data: Payload) -> Merge | None:
    """The merge an event tells the router of: a `lead.merged`, or a `lead.scored` whose
    person absorbed profiles (its identifiers alone come with a `lead.merged` too)."""
    if isinstance(data, LeadMerged) or (isinstance(data, LeadScored) and data.merged_from):
        return merge_of(data)
    return None


def named_keys(data: Payload) -> set[str]:
    """Every key an event names that the router must look up, before it is applied."""
    if isinstance(data, LeadActivity):
        return set(outcome_keys(data))
    found = {data.lead_key}
    merge = merge_in(data)
    if merge is not None:
        found |= merge.named()
    return found


def outcome_keys(activity: LeadActivity) -> list[str]:
    """The keys a CRM outcome names its person by, best first (its lead key alone on events
    written before outcomes carried every key they were given)."""
    return list(activity.identifiers) or [activity.lead_key]


def merge(batch: Batch, event: Envelope) -> None:
    """Move the absorbed keys' state to the survivor; keep one live assignment each."""
    found = merge_in(event.data)
    if found is None:
        return
    for root in batch.book.merge(found):
        keep_one(batch, root)


def keep_one(batch: Batch, lead_key: str) -> None:
    """Of a person's open rows (two profiles routed before they were found to be one), keep
    the first assignment (a queue entry only if no rep holds them) and close the others as
    `merged`, telling each closed row's rep and the kept one's. A final outcome reported
    under another of the person's keys since the kept row was assigned closes it too.

    First is `aliases.assignment_order`: the earlier `assigned_at`, and of two made by one
    batch the one it decided first, so a batch keeps what batches of one event each would
    have, whatever the keys. The SLA monitor applies the same rules to the same
    `lead.merged` (the order from the `lead.assigned` events, which carry
    `batch_position`; the outcomes of any of the person's keys), so it stops the closed
    assignment's window itself: the router publishes nothing more for it.
    """
    book = batch.book
    rows = book.history(lead_key)
    live = [row for row in rows if row.closed_at is None]
    if not live:
        return
    kept = min(live, key=lambda r: (r.status != "assigned", r.order()))
    scored = book.routed_lead(lead_key)
    for row in live:
        if row is kept:
            continue
        book.close(row, MERGED, batch.now)
        book.writes.notifications.extend(
            merge_notifications(batch.config, batch.options, lead_key, kept, row, scored)
        )
    ended = [
        row
        for row in rows
        if row.close_reason in FINAL and row.closed_at and row.closed_at >= kept.assigned_at
    ]
    if ended:
        first = min(ended, key=lambda r: (r.closed_at or r.assigned_at, r.close_reason or ""))
        book.close(kept, first.close_reason or "", first.closed_at or batch.now)
    converted = [
        r.converted_at for r in rows if r.converted_at and r.converted_at >= kept.assigned_at
    ]
    if converted:
        book.convert(kept, min(converted))


def route(batch: Batch, event: Envelope) -> domain.Decision | None:
    """Route a person the first time they enter a routed tier, and again when they rise to
    a higher routed tier (watch -> mql): the upgrade closes their live assignment or queue
    entry as `upgraded` and is decided afresh, by the new tier's rules, the history kept.
    Other scores of a routed person change nothing. A score carrying a merge applies it
    first."""
    merge(batch, event)
    scored = event.data
    assert isinstance(scored, LeadScored)
    book = batch.book
    if not routes(batch.config, scored):
        return None
    person = book.person(scored.lead_key)
    history = book.history(person)
    before = book.routed_lead(person)
    if history and not upgrades(scored, before):
        return None
    if person != scored.lead_key:
        # A score of an absorbed profile that was in flight when the merge came.
        scored = scored.model_copy(update={"lead_key": person})
    previous: list[str] = []
    if history:
        assert before is not None
        previous = previous_reps(history)
        live = [row for row in history if row.closed_at is None]
        for row in live:
            book.close(row, UPGRADED, batch.now)
        _keep_instead(book, scored)
    else:
        book.keep_lead(scored)
    where = batch.reach(scored)
    decision = domain.route(
        batch.config, scored, batch.now, book.state(batch.config, batch.now, where)
    )
    if history:
        assert before is not None
        step = f"upgraded from tier {before.tier} to {scored.tier}: routed again"
        decision = replace(decision, trace=[step, *decision.trace])
    record(
        batch,
        scored,
        decision,
        where,
        assignment_id=derived_event_id("assignment", event.id),
        seq=book.next_seq(person),
        kind="route",
        previous=previous,
    )
    return decision


def _keep_instead(book: RoutingBook, scored: LeadScored) -> None:
    """Make `scored` the person's routed lead in place of the one routed before (what an
    escalation or a retry decides on from now on): the stored row is dropped and the new
    one written, or this batch's own replaced."""
    writes = book.writes
    fresh = [s for s in writes.leads if s.lead_key == scored.lead_key]
    writes.leads = [s for s in writes.leads if s.lead_key != scored.lead_key]
    if scored.lead_key in writes.rerouted:
        del writes.rerouted[scored.lead_key]
        writes.unrouted.add(scored.lead_key)
    elif not fresh:
        writes.unrouted.add(scored.lead_key)
    book.keep_lead(scored)


def reassign(batch: Batch, event: Envelope) -> domain.Decision | None:
    """Pick again for an escalated lead, excluding every rep who already had it."""
    alert = event.data
    assert isinstance(alert, SlaAlert)
    book = batch.book
    person = book.person(alert.lead_key)
    current = book.current(person)
    if (
        current is None
        or current.assignment_id != alert.assignment_id
        or current.closed_at is not None
    ):
        log.info(
            "escalation ignored: the lead has moved on since",
            extra={"lead_key": alert.lead_key, "assignment_id": alert.assignment_id},
        )
        return None
    scored = book.routed_lead(person)
    if scored is None:
        log.warning("escalation for a lead the router never routed", extra={"lead_key": person})
        return None
    previous = previous_reps(book.history(person))
    where = batch.reach(scored)
    state = book.state(batch.config, batch.now, where, {*previous, alert.rep_id})
    # An escalated lead goes to someone: a pool's team gives it by its distribution.
    decision = domain.route(batch.config, scored, batch.now, state, into_pool=False)
    book.close(current, "escalated", batch.now)
    record(
        batch,
        scored,
        decision,
        where,
        assignment_id=derived_event_id("reassignment", event.id),
        seq=book.next_seq(person),
        kind="reassign",
        previous=previous or [alert.rep_id],
    )
    return decision


def dequeue(batch: Batch, entry: Assignment) -> domain.Decision | None:
    """Try a queued lead again; it leaves the queue when someone can take it now."""
    book = batch.book
    scored = book.routed_lead(entry.lead_key)
    if scored is None or entry.closed_at is not None:
        return None
    previous = previous_reps(book.history(entry.lead_key))
    where = batch.reach(scored)
    state = book.state(batch.config, batch.now, where, previous)
    decision = domain.route(batch.config, scored, batch.now, state, into_pool=False)
    if decision.outcome == "queued":
        return None
    book.close(entry, "assigned_from_queue", batch.now)
    record(
        batch,
        scored,
        decision,
        where,
        assignment_id=derived_event_id("dequeue", entry.assignment_id),
        seq=book.next_seq(entry.lead_key),
        kind="dequeue",
        previous=previous,
    )
    return decision


def record_outcome(batch: Batch, event: Envelope) -> None:
    """Close the lead's assignment on a final outcome; credit conversions to the rep."""
    close_on_outcome(batch.book, event)


def close_on_outcome(book: RoutingBook, event: Envelope) -> None:
    """Close the person's open assignment on a final outcome reported by any of their keys
    (lead key, email or phone); credit a conversion to its rep. A lead waiting in a pool
    leaves it (nobody is left to claim a lead the CRM closed)."""
    activity = event.data
    assert isinstance(activity, LeadActivity)
    if event.type not in OUTCOMES:
        return
    keys = outcome_keys(activity)
    person = person_of(keys, book.aliases.resolve(keys), lambda key: bool(book.history(key)))
    current = book.current(person)
    if current is None or (current.rep_id is None and current.status != "pooled"):
        return
    book.close(current, activity.activity, activity.occurred_at)
    if OUTCOMES[event.type]:
        book.convert(current, activity.occurred_at)


def record_contact(batch: Batch, event: Envelope) -> None:
    """Record the first contact (or acceptance) of the person's open assignment, reported
    by any of their keys."""
    activity = event.data
    assert isinstance(activity, LeadActivity)
    book = batch.book
    keys = outcome_keys(activity)
    person = person_of(keys, book.aliases.resolve(keys), lambda key: bool(book.history(key)))
    current = book.current(person)
    if current is None or current.rep_id is None or current.closed_at is not None:
        return
    if activity.occurred_at >= current.assigned_at:
        book.contact(current, activity.occurred_at)


def hand_over(
    batch: Batch,
    current: Assignment,
    decision: domain.Decision,
    where: Reach,
    *,
    assignment_id: str,
    close_reason: str,
    why: str,
) -> Assignment:
    """Give the person's open assignment `current` to the decision's rep, outside routing (a
    manager's hand, or the rep marked out of office): `current` closes as `close_reason`, the
    new assignment is published as `lead.reassigned` (the previous reps in
    `previous_rep_ids`, so the SLA monitor closes the old window and opens the new rep's),
    the new rep hears of it as of any reassignment and the previous rep that it moved and
    why. Returns the new assignment."""
    book = batch.book
    person = current.lead_key
    scored = book.routed_lead(person)
    assert scored is not None
    assert decision.rep_id is not None
    previous = previous_reps(book.history(person))
    book.close(current, close_reason, batch.now)
    record(
        batch,
        scored,
        decision,
        where,
        assignment_id=assignment_id,
        seq=book.next_seq(person),
        kind="manual",
        previous=previous,
    )
    row = book.history(person)[-1]
    book.writes.notifications.extend(
        handover_notifications(batch.config, batch.options, scored, current, row, why)
    )
    return row


Handler = Callable[[Batch, Envelope], domain.Decision | None]


def record_merge(batch: Batch, event: Envelope) -> None:
    """Apply a `lead.merged`."""
    merge(batch, event)


HANDLERS: dict[str, Handler] = {
    "lead.scored": route,
    "lead.merged": record_merge,
    "sla.escalated": reassign,
    **dict.fromkeys(OUTCOMES, record_outcome),
    **dict.fromkeys(CONTACTS, record_contact),
}


def previous_reps(history: list[Assignment]) -> list[str]:
    """The reps who had the lead before, in order, once each."""
    return list(dict.fromkeys(row.rep_id for row in history if row.rep_id is not None))


def record(
    batch: Batch,
    scored: LeadScored,
    decision: domain.Decision,
    where: Reach,
    *,
    assignment_id: str,
    seq: int,
    kind: Kind,
    previous: list[str],
    clock_from: datetime | None = None,
) -> None:
    config, book, now = batch.config, batch.book, batch.now
    if decision.rep_id is not None and (
        decision.rep_id not in where.reps
        or (decision.by_rotation and decision.team not in where.teams)
    ):
        raise RuntimeError(
            f"lead {scored.lead_key} was routed to {decision.rep_id} of team {decision.team}, "
            "outside the routing pools its batch locked (pools.reach must follow the "
            "decision walk of domain.route); it is not routed."
        )
    turn = None
    if decision.rep_id is not None and decision.by_rotation:
        turn = book.take_turn(decision.team, decision.rep_id)
    row = Assignment(
        assignment_id=assignment_id,
        lead_key=scored.lead_key,
        seq=seq,
        rep_id=decision.rep_id,
        team=decision.team,
        rule=decision.rule,
        status=decision.outcome,
        assigned_at=now,
        turn=turn,
        domain=domain.sticky_domain(config, scored),
        batch_position=batch.next_position(),
    )
    # Escalations so far, before this row: a reassignment by hand is not one.
    escalations = sum(1 for r in book.history(scored.lead_key) if r.close_reason == "escalated")
    book.add(row)
    data: Payload
    if decision.rep_id is not None:
        data = LeadAssigned(
            lead_key=scored.lead_key,
            assignment_id=assignment_id,
            rep_id=decision.rep_id,
            rep_name=config.rep(decision.rep_id).name,
            team=decision.team,
            rule=decision.rule,
            tier=scored.tier,
            reason=decision.reason,
            assigned_at=now,
            received_at=scored.received_at,
            previous_rep_ids=previous,
            source=scored.source,
            escalations=escalations,
            clock_from=clock_from,
            batch_position=row.batch_position,
        )
        type_ = "lead.reassigned" if kind in ("reassign", "manual") else "lead.assigned"
    elif decision.outcome == "pooled":
        pool = config.team(decision.team).pool
        assert pool is not None
        data = LeadPooled(
            lead_key=scored.lead_key,
            assignment_id=assignment_id,
            team=decision.team,
            rule=decision.rule,
            tier=scored.tier,
            reason=decision.reason,
            pooled_at=now,
            received_at=scored.received_at,
            unclaimed_at=now + pool.unclaimed_after,
            sla_starts=pool.sla_starts,
            source=scored.source,
        )
        type_ = "lead.pooled"
        book.writes.pooled.append(
            PoolEntry(assignment_id, decision.team, now, now + pool.unclaimed_after)
        )
    else:
        data = LeadUnassigned(
            lead_key=scored.lead_key,
            team=decision.team,
            rule=decision.rule,
            tier=scored.tier,
            reason=decision.reason,
            queued_at=now,
            received_at=scored.received_at,
        )
        type_ = "lead.unassigned"
    event = new_event(type_, data, source=SOURCE, time=now, event_id=assignment_id)
    writes = book.writes
    writes.decided.append(Decided(scored, decision, row, kind, config.routing.version))
    writes.events.append(event)
    writes.notifications.extend(notifications_for(config, batch.options, scored, decision, event))


def observe(decided: list[Decided], now: datetime) -> None:
    """Count a batch's decisions in the metrics (once it is written)."""
    for one in decided:
        decision = one.decision
        ASSIGNMENTS.labels(decision.team, decision.outcome).inc()
        for why in decision.skipped.values():
            SKIPPED.labels(skip_kind(why)).inc()
        if one.kind == "route":
            END_TO_END.observe(max(0.0, (now - one.scored.received_at).total_seconds()))
        elif one.kind == "reassign":
            REASSIGNMENTS.labels(decision.outcome).inc()
