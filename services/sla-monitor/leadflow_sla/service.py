"""SLA orchestration: open and close follow-up windows, fire due timers through the outbox.

Every function runs inside the caller's transaction and never commits. A consumed batch
(one event or hundreds, in Kafka order) costs the same few statements: one read of the
aliases of the keys its events name, one load of the windows of those people and of its
assignments (and, when it merges keys, one of the outcomes those people received), then
one insert of the windows it opened, one of their timers, one update of the stored
windows it closed and one of their timers, one insert of the outcomes it received, and
when it merges keys, one upsert of the aliases and one update per table moving the
absorbed keys' rows to the survivor (`windows.py` applies the events in memory between).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import aliases, tracing
from leadflow.config import LeadflowConfig
from leadflow.events import Envelope, SlaAlert, derived_event_id, new_event
from leadflow.notifications import queue
from leadflow.outbox import enqueue
from leadflow_sla import channels, domain, repository, windows
from leadflow_sla.metrics import ALERTS, BREACHES, SPEED_TO_LEAD, TIMER_LATENESS
from leadflow_sla.repository import DueTimer, StoredWindow

PRODUCER = "sla-monitor"
# The monitor's rows in `lead_aliases`.
ALIASES = "sla-monitor"
SOURCE = "/leadflow/sla-monitor"
FIRE_BATCH = 200

# Called with the due time of each timer a handler opens (a wake-up hint, not the truth).
TimerHint = Callable[[datetime], None]


def _no_hint(_due_at: datetime) -> None:
    return None


async def apply_events(
    session: AsyncSession,
    events: Sequence[Envelope],
    config: LeadflowConfig,
    now: datetime,
    hint: TimerHint = _no_hint,
) -> None:
    """Apply a batch of assignments, contacts, outcomes and merges in order, in a few
    statements whatever its size: resolve the keys its events name, load the windows they
    touch, open, close and move windows in memory event by event, write back in bulk."""
    keys, assignments = windows.touched(events)
    if not keys:
        return
    book = await aliases.load(session, ALIASES, keys)
    people = keys | set(book.resolve(keys).values())
    stored = await repository.windows_touched(session, people, assignments)
    joining = windows.needs_outcomes(events, book)
    reported = await repository.outcomes_of(session, people) if joining else []
    windowbook = windows.WindowBook(stored, book, reported)
    for event in events:
        windows.apply(windowbook, event, config, now)
    await repository.save_windows(session, windowbook.opened, windowbook.closed, now)
    await repository.save_people(
        session, windowbook.reported, windowbook.moved, windowbook.relabeled
    )
    await aliases.save(session, ALIASES, book)
    for seconds in windowbook.speeds_to_lead():
        SPEED_TO_LEAD.observe(seconds)
    for due_at in windowbook.open_timers():
        hint(due_at)


async def person_key(session: AsyncSession, lead_key: str) -> str:
    """The key the monitor knows the person known by `lead_key` by now."""
    return (await aliases.resolve(session, ALIASES, [lead_key]))[lead_key]


async def fire_due(
    session: AsyncSession, config: LeadflowConfig, router_url: str, now: datetime
) -> int:
    """Raise the alert of every due timer (up to a batch), exactly once each; returns how many."""
    timers = await repository.claim_due(session, now, FIRE_BATCH)
    stored = await repository.windows_of(session, sorted({t.assignment_id for t in timers}))
    fired = 0
    for timer in timers:
        if not await repository.mark_fired(session, timer.id, now):
            continue
        window = stored.get(timer.assignment_id)
        alert = build_alert(timer, window, config, router_url, now)
        # The alert is a span in the lead's trace, continued from the assignment's.
        with tracing.continued(
            f"{PRODUCER} sla.{alert.stage}",
            timer.traceparent,
            attributes={"leadflow.lead_key": alert.lead_key, "leadflow.sla.stage": alert.stage},
        ):
            await raise_alert(session, alert, config, now)
        if window is not None:
            await repository.mark_stage(session, timer.assignment_id, alert.stage, now)
        TIMER_LATENESS.observe(max(0.0, (now - timer.due_at).total_seconds()))
        fired += 1
    return fired


def build_alert(
    timer: DueTimer,
    window: StoredWindow | None,
    config: LeadflowConfig,
    router_url: str,
    now: datetime,
) -> SlaAlert:
    """The alert of a due timer, worded from what the timer and its window recorded.

    Reps, teams or policies removed from the configuration since the timer opened do not
    stop the alert: it falls back to the ids the rows keep.
    """
    stage = timer.stage
    policy = config.sla.policy(timer.policy)
    rep = next((r for r in config.reps if r.id == timer.rep_id), None)
    rep_name = rep.name if rep else timer.rep_id
    team = next((t for t in config.teams if t.name == timer.team), None)
    window_s = window.window_s if window else (policy.window.total_seconds() if policy else 0)
    window_due = window.due_at if window else timer.due_at
    lead_url = f"{router_url}/v1/leads/{timer.lead_key}/routing"
    if stage == "warning":
        message = domain.warning_message(
            rep_name=rep_name,
            lead_key=timer.lead_key,
            policy=timer.policy,
            window=timedelta(seconds=window_s),
            due_at=window_due,
            now=now,
            lead_url=lead_url,
        )
    elif stage == "breached":
        message = domain.breach_message(
            rep_name=rep_name,
            team=timer.team,
            lead_key=timer.lead_key,
            policy=timer.policy,
            window=timedelta(seconds=window_s),
            assigned_at=timer.assigned_at,
            now=now,
            lead_url=lead_url,
            due_at=window_due,
        )
    else:
        escalations = window.escalations if window else 0
        message = domain.escalation_message(
            rep_name=rep_name,
            team=timer.team,
            lead_key=timer.lead_key,
            policy=timer.policy,
            window_due_at=window_due,
            now=now,
            escalation=escalations + 1,
            max_escalations=policy.max_escalations if policy else escalations + 1,
            lead_url=lead_url,
        )
    return SlaAlert(
        lead_key=timer.lead_key,
        assignment_id=timer.assignment_id,
        stage=stage,
        policy=timer.policy,
        rep_id=timer.rep_id,
        rep_name=rep_name,
        team=timer.team,
        manager_email=team.manager.email if team else "",
        assigned_at=timer.assigned_at,
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
