"""The SLA ladder of one assignment: when to warn, when it is breached, when to escalate (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from leadflow.config import SlaPolicy
from leadflow_sla.business_time import WorkCalendar, add_business_time

Stage = Literal["warning", "breached", "escalated"]
STAGES: tuple[Stage, ...] = ("warning", "breached", "escalated")


@dataclass(frozen=True)
class StagePlan:
    """One rung of the ladder: the stage and the moment it is due."""

    stage: Stage
    due_at: datetime


def after(
    start: datetime, duration: timedelta, policy: SlaPolicy, calendar: WorkCalendar
) -> datetime:
    """`start` plus `duration`, counted in the policy's clock (wall or the rep's business time)."""
    if policy.clock == "business":
        return add_business_time(start, duration, calendar)
    return start + duration


def plan(
    policy: SlaPolicy, assigned_at: datetime, calendar: WorkCalendar, escalations_so_far: int
) -> list[StagePlan]:
    """The stages an assignment will reach if nobody contacts the lead, soonest first.

    `escalations_so_far` is how many times this lead was already reassigned by an
    escalation: once it reaches the policy's `max_escalations`, the ladder stops at the
    breach alert (the manager still hears of it; the lead is not moved again).
    """
    breach = after(assigned_at, policy.window, policy, calendar)
    stages: list[StagePlan] = []
    if policy.warn_at_percent is not None:
        warn_in = policy.window * policy.warn_at_percent / 100
        stages.append(StagePlan("warning", after(assigned_at, warn_in, policy, calendar)))
    stages.append(StagePlan("breached", breach))
    if policy.escalate_after is not None and escalations_so_far < policy.max_escalations:
        stages.append(
            StagePlan("escalated", after(breach, policy.escalate_after, policy, calendar))
        )
    return stages
