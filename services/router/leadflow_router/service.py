"""Routing orchestration: load the state, decide, record, emit through the outbox, notify.

Every function runs inside the caller's transaction and never commits. Decisions take the
routing lock first, so turns, caps and "assigned once" hold across router instances.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.config import LeadflowConfig, Rep
from leadflow.events import (
    Envelope,
    LeadActivity,
    LeadAssigned,
    LeadScored,
    LeadUnassigned,
    Payload,
    SlaAlert,
    derived_event_id,
    new_event,
)
from leadflow.outbox import enqueue
from leadflow_router import domain, repository, roster, roster_repository
from leadflow_router.availability import local_day_start, skip_kind
from leadflow_router.metrics import ASSIGNMENTS, END_TO_END, REASSIGNMENTS, SKIPPED
from leadflow_router.notify import NotifyOptions, queue_notifications

log = logging.getLogger(__name__)

PRODUCER = "router"
SOURCE = "/leadflow/router"
# Outcomes that end a rep's work on a lead, and whether they count as a conversion (SQL).
OUTCOMES = {"lead.rejected": False, "lead.converted": True, "lead.won": True, "lead.lost": False}

Kind = Literal["route", "reassign", "dequeue"]


async def current_reps(
    session: AsyncSession, config: LeadflowConfig, rep_ids: Iterable[str], now: datetime
) -> dict[str, Rep]:
    """Reps as they stand now: configuration, then run-time overrides and absences."""
    ids = sorted(set(rep_ids))
    stored = await roster_repository.overrides(session, ids)
    absent = await roster_repository.absences(session, ids, now)
    return {
        rep_id: roster.effective(
            config.rep(rep_id),
            stored.get(rep_id, {}),
            [(a["starts_at"], a["ends_at"], a["note"]) for a in absent.get(rep_id, [])],
        )
        for rep_id in ids
    }


async def routing_state(
    session: AsyncSession,
    config: LeadflowConfig,
    scored: LeadScored,
    now: datetime,
    excluded: frozenset[str] = frozenset(),
) -> domain.RoutingState:
    """Everything a decision for this lead reads: reps, loads, turns, window statistics."""
    play = domain.in_play(config, scored, now)
    reps = await current_reps(session, config, play.reps, now)
    loads = await repository.loads(session, {r: local_day_start(reps[r], now) for r in reps})
    last_turn = {team: await repository.last_turn(session, team) for team in sorted(play.teams)}
    recent: dict[str, dict[str, int]] = {}
    conversions: dict[str, dict[str, tuple[int, int]]] = {}
    for name in sorted(play.teams):
        team = config.team(name)
        if team.distribution != "weighted":
            continue
        recent[name] = await repository.recent_counts(session, team.reps, now - team.balance_window)
        if team.weights == "conversion":
            conversions[name] = await repository.conversion_stats(
                session, team.reps, now - team.conversion_window
            )
    return domain.RoutingState(reps, loads, last_turn, recent, conversions, excluded)


async def route_scored(
    session: AsyncSession,
    event: Envelope,
    config: LeadflowConfig,
    now: datetime,
    options: NotifyOptions | None = None,
) -> domain.Decision | None:
    """Route a lead the first time it qualifies; later scores of a routed lead change nothing."""
    scored = event.data
    assert isinstance(scored, LeadScored)
    if not scored.newly_qualified or scored.tier not in config.routing.tiers:
        return None
    await repository.lock_routing(session)
    if await repository.assignment_count(session, scored.lead_key) > 0:
        return None
    state = await routing_state(session, config, scored, now)
    decision = domain.route(config, scored, now, state)
    await repository.save_lead(session, scored, now)
    await _apply(
        session,
        config,
        options or NotifyOptions(),
        scored,
        decision,
        assignment_id=derived_event_id("assignment", event.id),
        seq=1,
        kind="route",
        previous=[],
        now=now,
    )
    return decision


async def reassign_escalated(
    session: AsyncSession,
    event: Envelope,
    config: LeadflowConfig,
    now: datetime,
    options: NotifyOptions | None = None,
) -> domain.Decision | None:
    """Pick again for an escalated lead, excluding every rep who already had it."""
    alert = event.data
    assert isinstance(alert, SlaAlert)
    await repository.lock_routing(session)
    current = await repository.current_assignment(session, alert.lead_key)
    if (
        current is None
        or current["assignment_id"] != alert.assignment_id
        or current["closed_at"] is not None
    ):
        log.info(
            "escalation ignored: the lead has moved on since",
            extra={"lead_key": alert.lead_key, "assignment_id": alert.assignment_id},
        )
        return None
    scored = await repository.routed_lead(session, alert.lead_key)
    if scored is None:
        log.warning(
            "escalation for a lead the router never routed", extra={"lead_key": alert.lead_key}
        )
        return None
    previous = _previous_reps(await repository.history(session, alert.lead_key))
    excluded = frozenset({*previous, alert.rep_id})
    decision = domain.route(
        config, scored, now, await routing_state(session, config, scored, now, excluded)
    )
    await repository.close(session, alert.assignment_id, "escalated", now)
    await _apply(
        session,
        config,
        options or NotifyOptions(),
        scored,
        decision,
        assignment_id=derived_event_id("reassignment", event.id),
        seq=current["seq"] + 1,
        kind="reassign",
        previous=previous or [alert.rep_id],
        now=now,
    )
    REASSIGNMENTS.labels(decision.outcome).inc()
    return decision


async def retry_queued(
    session: AsyncSession,
    config: LeadflowConfig,
    now: datetime,
    options: NotifyOptions | None = None,
    *,
    after_id: int = 0,
    limit: int = 100,
) -> tuple[list[int], int]:
    """Try queued leads again (a page after `after_id`); returns the entry ids seen and how
    many left the queue."""
    await repository.lock_routing(session)
    queued = await repository.queued_leads(session, after_id, limit)
    assigned = 0
    for entry in queued:
        scored = await repository.routed_lead(session, entry["lead_key"])
        if scored is None:
            continue
        previous = _previous_reps(await repository.history(session, entry["lead_key"]))
        state = await routing_state(session, config, scored, now, frozenset(previous))
        decision = domain.route(config, scored, now, state)
        if decision.outcome == "queued":
            continue
        await repository.close(session, entry["assignment_id"], "assigned_from_queue", now)
        await _apply(
            session,
            config,
            options or NotifyOptions(),
            scored,
            decision,
            assignment_id=derived_event_id("dequeue", entry["assignment_id"]),
            seq=entry["seq"] + 1,
            kind="dequeue",
            previous=previous,
            now=now,
        )
        assigned += 1
    return [int(entry["id"]) for entry in queued], assigned


async def record_activity(session: AsyncSession, event: Envelope) -> None:
    """Close the lead's assignment on a final outcome; credit conversions to the rep."""
    activity = event.data
    assert isinstance(activity, LeadActivity)
    if event.type in OUTCOMES:
        await repository.record_outcome(
            session,
            activity.lead_key,
            activity.activity,
            OUTCOMES[event.type],
            activity.occurred_at,
        )


def _previous_reps(history: list[dict[str, object]]) -> list[str]:
    return list(dict.fromkeys(str(h["rep_id"]) for h in history if h["rep_id"] is not None))


async def _apply(
    session: AsyncSession,
    config: LeadflowConfig,
    options: NotifyOptions,
    scored: LeadScored,
    decision: domain.Decision,
    *,
    assignment_id: str,
    seq: int,
    kind: Kind,
    previous: list[str],
    now: datetime,
) -> None:
    turn = None
    if decision.rep_id is not None and decision.by_rotation:
        turn = await repository.advance_turn(session, decision.team, decision.rep_id)
    await repository.record(
        session,
        lead_key=scored.lead_key,
        assignment_id=assignment_id,
        seq=seq,
        decision=decision,
        kind=kind,
        turn=turn,
        config_version=config.routing.version,
        now=now,
    )
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
        )
        type_ = "lead.reassigned" if kind == "reassign" else "lead.assigned"
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
    await enqueue(session, PRODUCER, event, now)
    await queue_notifications(session, config, options, scored, decision, event, now)
    ASSIGNMENTS.labels(decision.team, decision.outcome).inc()
    for reason in decision.skipped.values():
        SKIPPED.labels(skip_kind(reason)).inc()
    if kind == "route":
        END_TO_END.observe(max(0.0, (now - scored.received_at).total_seconds()))
