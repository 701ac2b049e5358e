"""SLA orchestration: start and stop follow-up timers, fire the due ones through the outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.config import LeadflowConfig
from leadflow.events import (
    Envelope,
    LeadActivity,
    LeadAssigned,
    SlaAlert,
    derived_event_id,
    new_event,
)
from leadflow.outbox import enqueue
from leadflow_sla import domain, repository
from leadflow_sla.metrics import ALERTS, SPEED_TO_LEAD, TIMER_LATENESS

PRODUCER = "sla-monitor"
FIRE_BATCH = 200


async def on_event(
    session: AsyncSession, event: Envelope, config: LeadflowConfig, now: datetime
) -> None:
    """Start a timer on an assignment; stop the lead's timers on a contact or outcome."""
    if isinstance(event.data, LeadAssigned):
        await start_timer(session, event.data, config)
    elif isinstance(event.data, LeadActivity) and event.type in domain.STOPPING_ACTIVITIES:
        await stop_timers(session, event.data, now)


async def start_timer(
    session: AsyncSession, assigned: LeadAssigned, config: LeadflowConfig
) -> None:
    """Open the follow-up window the first applicable policy gives this assignment."""
    policy = config.sla.policy_for(assigned.tier, assigned.team)
    if policy is None:
        return
    await repository.open_timer(
        session,
        {
            "assignment_id": assigned.assignment_id,
            "stage": "breached",
            "lead_key": assigned.lead_key,
            "policy": policy.name,
            "rep_id": assigned.rep_id,
            "team": assigned.team,
            "assigned_at": assigned.assigned_at,
            "due_at": domain.due_at(assigned.assigned_at, policy.window),
        },
    )


async def stop_timers(session: AsyncSession, activity: LeadActivity, now: datetime) -> None:
    """Close the lead's open windows; the first contact measures speed to lead."""
    for timer in await repository.stop_timers(session, activity.lead_key, now):
        if activity.activity == "contacted":
            SPEED_TO_LEAD.observe((activity.occurred_at - timer["assigned_at"]).total_seconds())


async def fire_due(
    session: AsyncSession, config: LeadflowConfig, router_url: str, now: datetime
) -> int:
    """Raise an alert for every due timer, exactly once each; returns how many fired."""
    fired = 0
    for timer in await repository.claim_due(session, now, FIRE_BATCH):
        if not await repository.mark_fired(session, timer["id"], now):
            continue
        policy = next(p for p in config.sla.policies if p.name == timer["policy"])
        rep = config.rep(timer["rep_id"])
        manager = config.team(timer["team"]).manager
        alert = SlaAlert(
            lead_key=timer["lead_key"],
            assignment_id=timer["assignment_id"],
            stage="breached",
            policy=policy.name,
            rep_id=rep.id,
            rep_name=rep.name,
            team=timer["team"],
            manager_email=manager.email,
            assigned_at=timer["assigned_at"],
            due_at=timer["due_at"],
            fired_at=now,
            late_by_s=(now - timer["due_at"]).total_seconds(),
            message=domain.breach_message(
                rep_name=rep.name,
                team=timer["team"],
                lead_key=timer["lead_key"],
                policy=policy.name,
                window=policy.window,
                assigned_at=timer["assigned_at"],
                now=now,
                lead_url=f"{router_url}/v1/leads/{timer['lead_key']}/routing",
            ),
        )
        event_id = derived_event_id("sla.breached", timer["assignment_id"])
        await enqueue(
            session,
            PRODUCER,
            new_event(
                "sla.breached", alert, source="/leadflow/sla-monitor", time=now, event_id=event_id
            ),
            now,
        )
        ALERTS.labels("breached", timer["team"]).inc()
        TIMER_LATENESS.observe(alert.late_by_s)
        fired += 1
    return fired
