"""What the monitor's events do to a batch's follow-up windows, in memory (pure).

A batch loads the open windows of its leads and the windows of its assignments in one
statement, applies its events to them one by one in Kafka order (so a contact later in the
batch closes a window opened earlier in it, and a copy of an assignment finds the window its
first delivery opened), and writes back what changed in bulk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from leadflow.config import LeadflowConfig, Rep
from leadflow.events import Envelope, LeadActivity, LeadAssigned
from leadflow_sla import domain, ladder
from leadflow_sla.business_time import WorkCalendar, calendar_for
from leadflow_sla.ladder import StagePlan

# What closes a window besides an activity: the lead went to another rep.
REASSIGNED = "reassigned"


@dataclass(slots=True)
class FollowUpWindow:
    """A row of `sla_windows`: as loaded (with its id), or opened by this batch (id None).

    A window opened by the batch carries the stages of its ladder; its timers are written open, or
    stopped when the batch closed the window too.
    """

    assignment_id: str
    lead_key: str
    policy: str
    clock: str
    window_s: float
    tier: str
    rep_id: str
    team: str
    escalations: int
    assigned_at: datetime
    due_at: datetime
    status: str = "open"
    outcome: str | None = None
    contacted_at: datetime | None = None
    closed_at: datetime | None = None
    id: int | None = None
    stages: list[StagePlan] = field(default_factory=list)


class WindowBook:
    """The windows a batch's events touch, changed as they are applied; what to write back."""

    def __init__(self, stored: Iterable[FollowUpWindow] = ()) -> None:
        self._assignments: set[str] = set()
        self._open: dict[str, list[FollowUpWindow]] = {}
        for window in stored:
            self._remember(window)
        # Windows this batch opened (in order) and stored windows it closed.
        self.opened: list[FollowUpWindow] = []
        self.closed: list[FollowUpWindow] = []

    def _remember(self, window: FollowUpWindow) -> None:
        self._assignments.add(window.assignment_id)
        if window.status == "open":
            self._open.setdefault(window.lead_key, []).append(window)

    def has_window(self, assignment_id: str) -> bool:
        """Whether a window was opened for this assignment (stored or by this batch)."""
        return assignment_id in self._assignments

    def open(self, window: FollowUpWindow) -> None:
        """A new window, open, with its ladder."""
        self._remember(window)
        self.opened.append(window)

    def close(
        self, lead_key: str, outcome: str, at: datetime, contacted_at: datetime | None = None
    ) -> list[FollowUpWindow]:
        """Close the lead's open windows (their timers stop with them); returns them."""
        closed = self._open.pop(lead_key, [])
        for window in closed:
            window.status, window.outcome = "closed", outcome
            window.closed_at, window.contacted_at = at, contacted_at
            if window.id is not None:
                self.closed.append(window)
        return closed

    def open_timers(self) -> list[datetime]:
        """Due times of the timers this batch opened that are still open."""
        return [s.due_at for w in self.opened if w.status == "open" for s in w.stages]

    def speeds_to_lead(self) -> list[float]:
        """Seconds from assignment to first contact of each window this batch closed by one."""
        return [
            max(0.0, (w.contacted_at - w.assigned_at).total_seconds())
            for w in (*self.closed, *self.opened)
            if w.contacted_at is not None
        ]


def rep_calendar(config: LeadflowConfig, rep_id: str) -> WorkCalendar:
    """The rep's working calendar (the default one if the rep left the configuration)."""
    rep = next((r for r in config.reps if r.id == rep_id), None)
    return calendar_for(rep or Rep(id="unknown", name=rep_id, email=""))


def start_window(
    book: WindowBook, assigned: LeadAssigned, config: LeadflowConfig, now: datetime
) -> None:
    """(Re)start the lead's follow-up window for the assigned rep, with its ladder of timers.

    A reassignment closes the previous rep's window first: the clock restarts for the new
    rep. An assignment that already has a window (a copy of its event) changes nothing.
    """
    if book.has_window(assigned.assignment_id):
        return
    book.close(assigned.lead_key, REASSIGNED, now)
    policy = config.sla.policy_for(assigned.tier, assigned.team, assigned.source, assigned.rule)
    if policy is None:
        return
    calendar = rep_calendar(config, assigned.rep_id)
    escalations = len(assigned.previous_rep_ids)
    stages = ladder.plan(policy, assigned.assigned_at, calendar, escalations)
    breach = next(s for s in stages if s.stage == "breached")
    book.open(
        FollowUpWindow(
            assignment_id=assigned.assignment_id,
            lead_key=assigned.lead_key,
            policy=policy.name,
            clock=policy.clock,
            window_s=policy.window.total_seconds(),
            tier=assigned.tier,
            rep_id=assigned.rep_id,
            team=assigned.team,
            escalations=escalations,
            assigned_at=assigned.assigned_at,
            due_at=breach.due_at,
            stages=stages,
        )
    )


def stop_windows(book: WindowBook, activity: LeadActivity, now: datetime) -> None:
    """Close the lead's open windows; a contact records when it came (speed to lead)."""
    contacted = activity.occurred_at if activity.activity == "contacted" else None
    book.close(activity.lead_key, activity.activity, now, contacted)


def apply(book: WindowBook, event: Envelope, config: LeadflowConfig, now: datetime) -> None:
    """Open a window on an assignment; close the lead's windows on a contact or outcome."""
    if isinstance(event.data, LeadAssigned):
        start_window(book, event.data, config, now)
    elif isinstance(event.data, LeadActivity) and event.type in domain.STOPPING_ACTIVITIES:
        stop_windows(book, event.data, now)


def touched(events: Iterable[Envelope]) -> tuple[set[str], set[str]]:
    """The leads and the assignments a batch's events touch (what to load)."""
    leads: set[str] = set()
    assignments: set[str] = set()
    for event in events:
        if isinstance(event.data, LeadAssigned):
            leads.add(event.data.lead_key)
            assignments.add(event.data.assignment_id)
        elif isinstance(event.data, LeadActivity) and event.type in domain.STOPPING_ACTIVITIES:
            leads.add(event.data.lead_key)
    return leads, assignments
