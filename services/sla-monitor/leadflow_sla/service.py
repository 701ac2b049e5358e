"""SLA orchestration: open and close follow-up windows, fire due timers through the outbox."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.config import LeadflowConfig, Rep
from leadflow.events import (
    Envelope,
    LeadActivity,
    LeadAssigned,
    SlaAlert,
    derived_event_id,
    new_event,
)
from leadflow.notifications import queue
from leadflow.outbox import enqueue
from leadflow_sla import channels, domain, ladder, repository
from leadflow_sla.business_time import WorkCalendar, calendar_for
from leadflow_sla.metrics import ALERTS, BREACHES, SPEED_TO_LEAD, TIMER_LATENESS

PRODUCER = "sla-monitor"
SOURCE = "/leadflow/sla-monitor"
FIRE_BATCH = 200

# Called with the due time of each timer a handler opens (a wake-up hint, not the truth).
TimerHint = Callable[[datetime], None]


def _no_hint(_due_at: datetime) -> None:
    return None


async def on_event(
    session: AsyncSession,
    event: Envelope,
    config: LeadflowConfig,
    now: datetime,
    hint: TimerHint = _no_hint,
) -> None:
    """Open a window on an assignment; close the lead's windows on a contact or outcome."""
    if isinstance(event.data, LeadAssigned):
        await start_window(session, event.data, config, now, hint)
    elif isinstance(event.data, LeadActivity) and event.type in domain.STOPPING_ACTIVITIES:
        await stop_windows(session, event.data, now)


def rep_calendar(config: LeadflowConfig, rep_id: str) -> WorkCalendar:
    """The rep's working calendar (the default one if the rep left the configuration)."""
    rep = next((r for r in config.reps if r.id == rep_id), None)
    return calendar_for(rep or Rep(id="unknown", name=rep_id, email=""))


async def start_window(
    session: AsyncSession,
    assigned: LeadAssigned,
    config: LeadflowConfig,
    now: datetime,
    hint: TimerHint = _no_hint,
) -> None:
    """(Re)start the lead's follow-up window for the assigned rep, with its ladder of timers.

    A reassignment closes the previous rep's window first: the clock restarts for the new rep.
    """
    if await repository.window_exists(session, assigned.assignment_id):
        return
    await repository.close_windows(session, assigned.lead_key, "reassigned", now)
    policy = config.sla.policy_for(assigned.tier, assigned.team, assigned.source, assigned.rule)
    if policy is None:
        return
    calendar = rep_calendar(config, assigned.rep_id)
    stages = ladder.plan(policy, assigned.assigned_at, calendar, len(assigned.previous_rep_ids))
    breach = next(s for s in stages if s.stage == "breached")
    await repository.open_window(
        session,
        {
            "assignment_id": assigned.assignment_id,
            "lead_key": assigned.lead_key,
            "policy": policy.name,
            "clock": policy.clock,
            "window_s": policy.window.total_seconds(),
            "tier": assigned.tier,
            "rep_id": assigned.rep_id,
            "team": assigned.team,
            "escalations": len(assigned.previous_rep_ids),
            "assigned_at": assigned.assigned_at,
            "due_at": breach.due_at,
        },
        [{"stage": s.stage, "due_at": s.due_at} for s in stages],
    )
    for stage in stages:
        hint(stage.due_at)


async def stop_windows(session: AsyncSession, activity: LeadActivity, now: datetime) -> None:
    """Close the lead's open windows; the first contact measures speed to lead."""
    contacted = activity.occurred_at if activity.activity == "contacted" else None
    closed = await repository.close_windows(
        session, activity.lead_key, activity.activity, now, contacted
    )
    if contacted is not None:
        for window in closed:
            SPEED_TO_LEAD.observe(max(0.0, (contacted - window["assigned_at"]).total_seconds()))


async def fire_due(
    session: AsyncSession, config: LeadflowConfig, router_url: str, now: datetime
) -> int:
    """Raise the alert of every due timer (up to a batch), exactly once each; returns how many."""
    timers = await repository.claim_due(session, now, FIRE_BATCH)
    windows = await repository.windows_of(session, sorted({t["assignment_id"] for t in timers}))
    fired = 0
    for timer in timers:
        if not await repository.mark_fired(session, timer["id"], now):
            continue
        window = windows.get(timer["assignment_id"])
        alert = build_alert(timer, window, config, router_url, now)
        await raise_alert(session, alert, config, now)
        if window is not None:
            await repository.mark_stage(session, timer["assignment_id"], alert.stage, now)
        TIMER_LATENESS.observe(max(0.0, (now - timer["due_at"]).total_seconds()))
        fired += 1
    return fired


def build_alert(
    timer: dict[str, Any],
    window: dict[str, Any] | None,
    config: LeadflowConfig,
    router_url: str,
    now: datetime,
) -> SlaAlert:
    """The alert of a due timer, worded from what the timer and its window recorded.

    Reps, teams or policies removed from the configuration since the timer opened do not
    stop the alert: it falls back to the ids the rows keep.
    """
    stage: ladder.Stage = timer["stage"]
    policy = config.sla.policy(timer["policy"])
    rep = next((r for r in config.reps if r.id == timer["rep_id"]), None)
    rep_name = rep.name if rep else timer["rep_id"]
    team = next((t for t in config.teams if t.name == timer["team"]), None)
    window_s = window["window_s"] if window else (policy.window.total_seconds() if policy else 0)
    window_due = window["due_at"] if window else timer["due_at"]
    lead_url = f"{router_url}/v1/leads/{timer['lead_key']}/routing"
    if stage == "warning":
        message = domain.warning_message(
            rep_name=rep_name,
            lead_key=timer["lead_key"],
            policy=timer["policy"],
            window=timedelta(seconds=window_s),
            due_at=window_due,
            now=now,
            lead_url=lead_url,
        )
    elif stage == "breached":
        message = domain.breach_message(
            rep_name=rep_name,
            team=timer["team"],
            lead_key=timer["lead_key"],
            policy=timer["policy"],
            window=timedelta(seconds=window_s),
            assigned_at=timer["assigned_at"],
            now=now,
            lead_url=lead_url,
            due_at=window_due,
        )
    else:
        escalations = window["escalations"] if window else 0
        message = domain.escalation_message(
            rep_name=rep_name,
            team=timer["team"],
            lead_key=timer["lead_key"],
            policy=timer["policy"],
            window_due_at=window_due,
            now=now,
            escalation=escalations + 1,
            max_escalations=policy.max_escalations if policy else escalations + 1,
            lead_url=lead_url,
        )
    return SlaAlert(
        lead_key=timer["lead_key"],
        assignment_id=timer["assignment_id"],
        stage=stage,
        policy=timer["policy"],
        rep_id=timer["rep_id"],
        rep_name=rep_name,
        team=timer["team"],
        manager_email=team.manager.email if team else "",
        assigned_at=timer["assigned_at"],
        due_at=window_due,
        fired_at=now,
        late_by_s=(now - window_due).total_seconds(),
        message=message,
    )


async def raise_alert(
    session: AsyncSession, alert: SlaAlert, config: LeadflowConfig, now: datetime
) -> None:
    """Publish `sla.<stage>` through the outbox and queue its notifications, in one transaction."""
    type_ = f"sla.{alert.stage}"
    event_id = derived_event_id(type_, alert.assignment_id)
    await enqueue(
        session, PRODUCER, new_event(type_, alert, source=SOURCE, time=now, event_id=event_id), now
    )
    rep = next((r for r in config.reps if r.id == alert.rep_id), None)
    for notification in channels.notifications_for(alert, config.sla, rep.email if rep else None):
        await queue(session, PRODUCER, notification, now)
    ALERTS.labels(alert.stage, alert.team).inc()
    if alert.stage == "breached":
        BREACHES.labels(alert.team).inc()
