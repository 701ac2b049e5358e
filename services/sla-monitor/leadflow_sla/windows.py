"""What the monitor's events do to a batch's follow-up windows, in memory (pure).

A batch loads the open windows of its people and the windows of its assignments in one
statement, applies its events to them one by one in Kafka order (so a contact later in the
batch closes a window opened earlier in it, and a copy of an assignment finds the window its
first delivery opened), and writes back what changed in bulk.

One person, one window. Every key an event names is resolved through the monitor's aliases
to the person's current key: an assignment opens its window there, and an outcome reported
by email, phone or lead key closes the window open there. A `lead.merged` moves the
absorbed keys' windows to the survivor. Of the person's assignments still live then (as
the router counts them: a window open, or closed by a contact or an acceptance, and no
rejection, conversion, win or loss since), the router keeps the first one (the earlier
`assigned_at`, and of two made in one router batch the one it decided first: the
`batch_position` of their `lead.assigned`) and closes the others as `merged` without
publishing anything; the monitor applies the same rule to the
same merge (`keep_one`): the other windows close as `merged`, their timers stopped, and
their contact, if any, counts for the kept one. The outcomes each key received are kept
(`ReportedOutcome`), so a contact reported under the phone before the merge told the
monitor the phone was the person's still closes the window of the assignment made under
the email once the merge comes: the same events with the merge earlier or later leave the
same windows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from leadflow.aliases import AliasBook, Merge, assignment_order, merge_of, person_of
from leadflow.config import LeadflowConfig, Rep
from leadflow.events import Envelope, LeadActivity, LeadAssigned, LeadMerged
from leadflow_sla import domain, ladder
from leadflow_sla.business_time import WorkCalendar, calendar_for
from leadflow_sla.ladder import StagePlan

# What closes a window besides an activity: the lead went to another rep, or the person
# had another live assignment, made earlier, when two of their keys were found to be one.
REASSIGNED = "reassigned"
MERGED = "merged"
# Outcomes that close a window but leave the assignment the rep's.
SETTLING = ("contacted", "accepted")
ENDING = {kind.removeprefix("lead.") for kind in domain.ENDING_ACTIVITIES}


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
    # The router's order of assignments made at the same instant (`lead.assigned`).
    batch_position: int | None = None

    def order(self) -> tuple[datetime, bool, int, str]:
        """Where its assignment stands among the person's (`aliases.assignment_order`)."""
        return assignment_order(self.assigned_at, self.batch_position, self.assignment_id)


@dataclass(slots=True)
class ReportedOutcome:
    """A row of `sla_outcomes`: an outcome that stops the clock, under the person's key."""

    lead_key: str
    activity: str
    occurred_at: datetime
    event_id: str

    def order(self) -> tuple[datetime, str, str]:
        """Earliest first; ties broken by the values, not by arrival."""
        return (self.occurred_at, self.activity, self.event_id)


class WindowBook:
    """The windows a batch's events touch, changed as they are applied; what to write back.

    `aliases` holds the monitor's aliases of the batch's keys; with a merge in the batch,
    `outcomes` the outcomes its people received before.
    """

    def __init__(
        self,
        stored: Iterable[FollowUpWindow] = (),
        aliases: AliasBook | None = None,
        outcomes: Iterable[ReportedOutcome] = (),
    ) -> None:
        self.aliases = aliases if aliases is not None else AliasBook()
        self._assignments: set[str] = set()
        # By person: windows open, and windows closed by a contact or an acceptance.
        self._open: dict[str, list[FollowUpWindow]] = {}
        self._settled: dict[str, list[FollowUpWindow]] = {}
        self._outcomes: dict[str, list[ReportedOutcome]] = {}
        for window in stored:
            self._remember(window)
        for outcome in outcomes:
            self._outcomes.setdefault(outcome.lead_key, []).append(outcome)
        # Windows this batch opened (in order, and by key), stored windows it closed, and
        # stored closed windows it closed again as merged.
        self.opened: list[FollowUpWindow] = []
        self._opened: dict[str, list[FollowUpWindow]] = {}
        self.closed: list[FollowUpWindow] = []
        self.relabeled: list[FollowUpWindow] = []
        # Outcomes this batch received, and each key a merge absorbed with its survivor.
        self.reported: list[ReportedOutcome] = []
        self.moved: dict[str, str] = {}

    def _remember(self, window: FollowUpWindow) -> None:
        self._assignments.add(window.assignment_id)
        if window.status == "open":
            self._open.setdefault(window.lead_key, []).append(window)
        elif window.outcome in SETTLING:
            self._settled.setdefault(window.lead_key, []).append(window)

    def has_window(self, assignment_id: str) -> bool:
        """Whether a window was opened for this assignment (stored or by this batch)."""
        return assignment_id in self._assignments

    def has_open(self, lead_key: str) -> bool:
        """Whether the person known by this (current) key has a window open."""
        return bool(self._open.get(lead_key))

    def open(self, window: FollowUpWindow) -> None:
        """A new window, open, with its ladder."""
        self._remember(window)
        self.opened.append(window)
        self._opened.setdefault(window.lead_key, []).append(window)

    def close(
        self, lead_key: str, outcome: str, at: datetime, contacted_at: datetime | None = None
    ) -> list[FollowUpWindow]:
        """Close the person's open windows (their timers stop with them); returns them."""
        closed = self._open.pop(lead_key, [])
        for window in closed:
            self._close(window, outcome, at, contacted_at)
        return closed

    def _close(
        self, window: FollowUpWindow, outcome: str, at: datetime, contacted_at: datetime | None
    ) -> None:
        window.status, window.outcome = "closed", outcome
        window.closed_at, window.contacted_at = at, contacted_at
        if window.id is not None:
            self.closed.append(window)
        if outcome in SETTLING:
            self._settled.setdefault(window.lead_key, []).append(window)

    def report(self, outcome: ReportedOutcome) -> None:
        """Keep an outcome the person received (a later merge may need it)."""
        self._outcomes.setdefault(outcome.lead_key, []).append(outcome)
        self.reported.append(outcome)

    def merge(self, merge: Merge, now: datetime) -> None:
        """Record a merge; move the absorbed keys' windows and outcomes to the survivor, keep
        one live assignment, and let the outcomes of any of the person's keys close its
        window if it is still open."""
        moved = self.aliases.apply(merge)
        for key, root in sorted(moved.items()):
            for windows in (self._open, self._settled, self._opened):
                windows.setdefault(root, []).extend(windows.pop(key, []))
                for window in windows[root]:
                    window.lead_key = root
            for outcome in self._outcomes.pop(key, []):
                outcome.lead_key = root
                self._outcomes.setdefault(root, []).append(outcome)
        self.moved = {
            key: self.aliases.canonical(root) for key, root in {**self.moved, **moved}.items()
        }
        for root in sorted(set(moved.values())):
            self.keep_one(root, now)
            self._apply_outcomes(root, now)

    def keep_one(self, lead_key: str, now: datetime) -> None:
        """Of the person's live assignments, keep the first, as the router does
        (`aliases.assignment_order`: the earlier `assigned_at`, and of two made in one
        router batch the one it decided first); close the others' windows as `merged`,
        their timers stopped, their contact no longer theirs."""
        live = [*self._open.get(lead_key, []), *self._settled.get(lead_key, [])]
        live = [w for w in live if not self._ended(w)]
        if len(live) < 2:
            return
        kept = min(live, key=FollowUpWindow.order)
        for window in live:
            if window is kept:
                continue
            if window.status == "open":
                self._open[lead_key].remove(window)
                self._close(window, MERGED, now, None)
            else:
                self._settled[lead_key].remove(window)
                window.outcome, window.contacted_at, window.closed_at = MERGED, None, now
                if window.id is not None:
                    self.relabeled.append(window)

    def _ended(self, window: FollowUpWindow) -> bool:
        """Whether the router closed the assignment of a settled window since: the person
        was rejected, converted, won or lost after it was made."""
        return window.status != "open" and any(
            o.activity in ENDING and o.occurred_at >= window.assigned_at
            for o in self._outcomes.get(window.lead_key, [])
        )

    def _apply_outcomes(self, lead_key: str, now: datetime) -> None:
        """Close the person's open window with the first outcome received for any of their
        keys since it was assigned."""
        for window in self._open.get(lead_key, []):
            after = [
                o
                for o in self._outcomes.get(lead_key, [])
                if o.occurred_at >= window.assigned_at
                and f"lead.{o.activity}" in domain.STOPPING_ACTIVITIES
            ]
            if not after:
                continue
            first = min(after, key=ReportedOutcome.order)
            contacted = first.occurred_at if first.activity == "contacted" else None
            self.close(lead_key, first.activity, now, contacted)
            return

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
    """(Re)start the person's follow-up window for the assigned rep, with its ladder of timers.

    A reassignment (the lead had reps before: an escalation, or a manager's by hand) closes
    the previous rep's window first: the clock restarts for the new rep, whose ladder counts
    the escalations so far (`escalations`; a reassignment by hand is not one). A first
    assignment of a person who already has a live assignment (two of their keys were
    assigned before anyone knew they were one) keeps the first of the two (`keep_one`).
    An assignment that already has a window (a copy of its event) changes nothing. The
    ladder counts from `clock_from` when the event gives one (a lead claimed from a pool
    whose clock starts at the lead's arrival there), else from the assignment.
    """
    if book.has_window(assigned.assignment_id):
        return
    person = book.aliases.canonical(assigned.lead_key)
    first = not assigned.previous_rep_ids
    if not first:
        book.close(person, REASSIGNED, now)
    policy = config.sla.policy_for(assigned.tier, assigned.team, assigned.source, assigned.rule)
    if policy is None:
        return
    calendar = rep_calendar(config, assigned.rep_id)
    escalations = (
        assigned.escalations if assigned.escalations is not None else len(assigned.previous_rep_ids)
    )
    # A lead claimed from a pool whose clock starts at arrival counts from its arrival.
    started = assigned.clock_from or assigned.assigned_at
    stages = ladder.plan(policy, started, calendar, escalations)
    breach = next(s for s in stages if s.stage == "breached")
    book.open(
        FollowUpWindow(
            assignment_id=assigned.assignment_id,
            lead_key=person,
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
            batch_position=assigned.batch_position,
        )
    )
    if first:
        book.keep_one(person, now)


def named_keys(activity: LeadActivity) -> list[str]:
    """The keys an outcome names its person by, best first (its lead key alone on events
    written before outcomes carried their identifiers)."""
    return list(activity.identifiers) or [activity.lead_key]


def stop_windows(book: WindowBook, event_id: str, activity: LeadActivity, now: datetime) -> None:
    """Close the open window of the person the outcome names by any of its keys; a contact
    records when it came (speed to lead). The outcome is kept for later merges."""
    keys = named_keys(activity)
    person = person_of(keys, book.aliases.resolve(keys), book.has_open)
    if f"lead.{activity.activity}" in domain.STOPPING_ACTIVITIES:
        contacted = activity.occurred_at if activity.activity == "contacted" else None
        book.close(person, activity.activity, now, contacted)
    book.report(ReportedOutcome(person, activity.activity, activity.occurred_at, event_id))


def apply(book: WindowBook, event: Envelope, config: LeadflowConfig, now: datetime) -> None:
    """Open a window on an assignment; close the person's window on a contact or outcome;
    move windows to the survivor on a merge."""
    if isinstance(event.data, LeadAssigned):
        start_window(book, event.data, config, now)
    elif isinstance(event.data, LeadActivity) and event.type in domain.OUTCOMES:
        stop_windows(book, event.id, event.data, now)
    elif isinstance(event.data, LeadMerged) and (merge := merge_of(event.data)) is not None:
        book.merge(merge, now)


def touched(events: Iterable[Envelope]) -> tuple[set[str], set[str]]:
    """The keys and the assignments a batch's events touch (what to resolve and load)."""
    keys: set[str] = set()
    assignments: set[str] = set()
    for event in events:
        if isinstance(event.data, LeadAssigned):
            keys.add(event.data.lead_key)
            assignments.add(event.data.assignment_id)
        elif isinstance(event.data, LeadActivity) and event.type in domain.OUTCOMES:
            keys.update(named_keys(event.data))
        elif isinstance(event.data, LeadMerged) and (merge := merge_of(event.data)) is not None:
            keys.update(merge.named())
    return keys, assignments


def needs_outcomes(events: Iterable[Envelope], aliases: AliasBook) -> bool:
    """Whether a batch may join a person's keys (a merge, or an assignment under a key that
    is an alias now): then it needs the outcomes the person received."""
    return any(
        (isinstance(e.data, LeadMerged) and merge_of(e.data) is not None)
        or (
            isinstance(e.data, LeadAssigned)
            and aliases.canonical(e.data.lead_key) != e.data.lead_key
        )
        for e in events
    )
