"""The routing state a batch reads and changes, in memory: assignments, loads and turns (pure).

A batch loads it in a few statements, applies its events to it one by one in order (so
the second lead of a batch sees the first one's assignment, turn and load), and writes
back what changed. It counts the way the database does: a rep's open leads are their
assignments not closed; "assigned since" counts assignments (never queue entries) from an
instant on (the start of the rep's day, a weighted team's balance or conversion window).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from leadflow.config import LeadflowConfig, Rep
from leadflow.delivery import Notification
from leadflow.events import Envelope, LeadScored
from leadflow_router.availability import RepLoad
from leadflow_router.domain import Decision, RoutingState
from leadflow_router.pools import Reach

Kind = Literal["route", "reassign", "dequeue"]


@dataclass(slots=True)
class Assignment:
    """A row of `assignments`: as loaded (with its id), or made by this batch (id None)."""

    assignment_id: str
    lead_key: str
    seq: int
    rep_id: str | None
    team: str
    rule: str
    status: str
    assigned_at: datetime
    turn: int | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    converted_at: datetime | None = None
    id: int | None = None


@dataclass(slots=True)
class Turns:
    """A team's round-robin pointer: who had the last turn, and how many turns were given."""

    last_rep_id: str | None
    turns: int
    stored: bool = True


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision this batch took, and what it was about (the record and the metrics)."""

    scored: LeadScored
    decision: Decision
    assignment: Assignment
    kind: Kind
    config_version: str


@dataclass
class Writes:
    """Everything a batch changed, to be written back in bulk."""

    assignments: list[Assignment] = field(default_factory=list)
    changed: dict[int, Assignment] = field(default_factory=dict)  # stored rows, by id
    turns: dict[str, Turns] = field(default_factory=dict)
    leads: list[LeadScored] = field(default_factory=list)
    decided: list[Decided] = field(default_factory=list)
    events: list[Envelope] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)


class RoutingBook:
    """The loaded state of a batch's leads, reps and teams, changed as events are applied.

    `reps` are the reps as they stand now (overrides and absences applied); `open_leads`
    and `assigned_since` hold a count for every loaded rep (0 when they have none), the
    latter per instant it was loaded for: `{since: {rep: [assigned, converted]}}`.
    """

    def __init__(
        self,
        *,
        reps: Mapping[str, Rep] | None = None,
        history: Mapping[str, list[Assignment]] | None = None,
        open_leads: Mapping[str, int] | None = None,
        assigned_since: Mapping[datetime, Mapping[str, list[int]]] | None = None,
        day_starts: Mapping[str, datetime] | None = None,
        turns: Mapping[str, Turns] | None = None,
        routed: Mapping[str, LeadScored] | None = None,
    ) -> None:
        self.reps = dict(reps or {})
        self._history = {key: list(rows) for key, rows in (history or {}).items()}
        self._open = dict(open_leads or {})
        self._since = {s: dict(counts) for s, counts in (assigned_since or {}).items()}
        self._day_starts = dict(day_starts or {})
        self._turns = dict(turns or {})
        self._routed = dict(routed or {})
        self.writes = Writes()

    # What decisions read.

    def history(self, lead_key: str) -> list[Assignment]:
        """Every assignment and queue entry of a lead, oldest first."""
        return self._history.get(lead_key, [])

    def current(self, lead_key: str) -> Assignment | None:
        """The lead's latest assignment or queue entry."""
        rows = self._history.get(lead_key)
        return rows[-1] if rows else None

    def routed_lead(self, lead_key: str) -> LeadScored | None:
        """The scored lead as it was first routed."""
        return self._routed.get(lead_key)

    def state(
        self, config: LeadflowConfig, now: datetime, reach: Reach, excluded: Iterable[str] = ()
    ) -> RoutingState:
        """What a decision within `reach` reads: reps, loads, turns, window statistics."""
        loads = {
            r: RepLoad(today=self._assigned(r, self._day_starts[r])[0], open=self._open[r])
            for r in reach.reps
        }
        last_turn: dict[str, str | None] = {}
        recent: dict[str, dict[str, int]] = {}
        conversions: dict[str, dict[str, tuple[int, int]]] = {}
        for name in reach.teams:
            turns = self._turns.get(name)
            last_turn[name] = turns.last_rep_id if turns is not None else None
            team = config.team(name)
            if team.distribution != "weighted":
                continue
            since = now - team.balance_window
            recent[name] = {r: self._assigned(r, since)[0] for r in team.reps}
            if team.weights == "conversion":
                since = now - team.conversion_window
                conversions[name] = {r: self._assigned(r, since) for r in team.reps}
        reps = {r: self.reps[r] for r in reach.reps}
        return RoutingState(reps, loads, last_turn, recent, conversions, frozenset(excluded))

    def _assigned(self, rep_id: str, since: datetime) -> tuple[int, int]:
        assigned, converted = self._since[since][rep_id]
        return assigned, converted

    # What events change.

    def keep_lead(self, scored: LeadScored) -> None:
        """Keep the scored lead a first routing decided on (for reassignments and retries)."""
        self._routed[scored.lead_key] = scored
        self.writes.leads.append(scored)

    def take_turn(self, team: str, rep_id: str) -> int:
        """Record that `rep_id` had the team's latest turn; returns that turn's number."""
        turns = self._turns.get(team)
        if turns is None:
            turns = self._turns[team] = Turns(None, 0, stored=False)
        turns.last_rep_id = rep_id
        turns.turns += 1
        self.writes.turns[team] = turns
        return turns.turns

    def add(self, row: Assignment) -> None:
        """A new assignment or queue entry (the lead's next `seq`)."""
        self._history.setdefault(row.lead_key, []).append(row)
        self.writes.assignments.append(row)
        rep = row.rep_id
        if row.status != "assigned" or rep is None:
            return
        if rep in self._open and row.closed_at is None:
            self._open[rep] += 1
        for since, counts in self._since.items():
            if rep in counts and row.assigned_at >= since:
                counts[rep][0] += 1
                if row.converted_at is not None:
                    counts[rep][1] += 1

    def close(self, row: Assignment, reason: str, at: datetime) -> None:
        """Mark an assignment as no longer open (reassigned, dequeued, or an outcome came)."""
        if row.closed_at is not None:
            return
        row.closed_at, row.close_reason = at, reason
        self._changed(row)
        if row.status == "assigned" and row.rep_id in self._open:
            self._open[row.rep_id] -= 1

    def convert(self, row: Assignment, at: datetime) -> None:
        """Credit a conversion (SQL) to the assignment's rep."""
        if row.converted_at is not None:
            return
        row.converted_at = at
        self._changed(row)
        if row.status != "assigned" or row.rep_id is None:
            return
        for since, counts in self._since.items():
            if row.rep_id in counts and row.assigned_at >= since:
                counts[row.rep_id][1] += 1

    def _changed(self, row: Assignment) -> None:
        if row.id is not None:
            self.writes.changed[row.id] = row
