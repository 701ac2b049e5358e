"""Routing orchestration: decide, record, and emit the assignment through the outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.config import LeadflowConfig
from leadflow.events import (
    Envelope,
    LeadAssigned,
    LeadScored,
    LeadUnassigned,
    Payload,
    derived_event_id,
    new_event,
)
from leadflow.outbox import enqueue
from leadflow_router import domain, repository
from leadflow_router.metrics import ASSIGNMENTS, END_TO_END

PRODUCER = "router"


async def route_scored(
    session: AsyncSession, event: Envelope, config: LeadflowConfig, now: datetime
) -> domain.Decision | None:
    """Route a lead the first time it qualifies; later scores of a routed lead change nothing."""
    scored = event.data
    assert isinstance(scored, LeadScored)
    if not scored.newly_qualified or scored.tier not in config.routing.tiers:
        return None
    if await repository.assignment_count(session, scored.lead_key) > 0:
        return None
    teams = [t.name for t in config.teams]
    last_by_team = {team: await repository.last_turn(session, team) for team in teams}
    decision = domain.route(config, scored, now, last_by_team)
    assignment_id = derived_event_id("assignment", event.id)
    await repository.record(
        session,
        lead_key=scored.lead_key,
        assignment_id=assignment_id,
        seq=1,
        decision=decision,
        config_version=config.routing.version,
        now=now,
    )
    data: Payload
    if decision.rep_id is not None:
        if decision.by_rotation:
            await repository.advance_turn(session, decision.team, decision.rep_id)
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
            source=scored.source,
        )
        type_ = "lead.assigned"
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
    await enqueue(
        session,
        PRODUCER,
        new_event(type_, data, source="/leadflow/router", time=now, event_id=assignment_id),
        now,
    )
    ASSIGNMENTS.labels(decision.team, decision.outcome).inc()
    END_TO_END.observe(max(0.0, (now - scored.received_at).total_seconds()))
    return decision
