"""The routing state a batch reads and changes, in memory: assignments, loads and turns (pure).

A batch loads it in a few statements, applies its events to it one by one in order (so
the second lead of a batch sees the first one's assignment, turn and load), and writes
back what changed. It counts the way the database does: a rep's open leads are their
assignments not closed; "assigned since" counts assignments (never queue entries) from an
instant on (the start of the rep's day, a weighted team's balance or conversion window).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, KeysView, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from leadflow.aliases import Alias, AliasBook, Merge, assignment_order
from leadflow.config import LeadflowConfig, Rep
from leadflow.delivery import Notification
from leadflow.events import Envelope, LeadScored
from leadflow_router.availability import RepLoad
from leadflow_router.domain import Decision, RoutingState
from leadflow_router.pools import Reach

# `manual`: a manager reassigned the lead by hand (admin API), or marked its rep out of office;
# `claim`: a rep took the lead from their team's pool; `unclaimed`: nobody claimed it in
# time and the team's distribution gave it.
Kind = Literal["route", "reassign", "dequeue", "manual", "claim", "unclaimed"]
# Why an assignment closed when its person's other live assignment, made earlier, was kept.
MERGED = "merged"


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
    contacted_at: datetime | None = None
    # The lead's company domain (`domain.sticky_domain`): what sticky ownership looks up.
    domain: str | None = None
    # Its place among the assignments the router made at the same `assigned_at`, in the
    # order it decided them (None on rows written before it was recorded): which of two
    # made in one batch came first when their person's profiles merge.
    batch_position: int | None = None

    def order(self) -> tuple[datetime, bool, int, str]:
        """Where it stands among the person's assignments (`aliases.assignment_order`)."""
        return assignment_order(self.assigned_at, self.batch_position, self.assignment_id)


@dataclass(slots=True)
class Turns:
    """A team's round-robin pointer: who had the last turn, and how many turns were given."""

    last_rep_id: str | None
    turns: int
    stored: bool = True


@dataclass(frozen=True, slots=True)
class PoolEntry:
    """A lead waiting in a team's pool (a row of `pooled_leads`): its pool entry (the
    assignment row with status `pooled`), and when its manager hears nobody claimed it."""

    assignment_id: str
    team: str
    pooled_at: datetime
    due_at: datetime


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
    # Leads this batch left waiting in a team's pool.
    pooled: list[PoolEntry] = field(default_factory=list)
    # What merges changed: alias rows; stored assignments moved to a survivor (by id, with
    # their new key and seq); keys whose decisions now belong to a survivor (old -> new);
    # routed leads dropped (by key), and routed leads a survivor takes over (by its key).
    aliases: dict[str, Alias] = field(default_factory=dict)
    moved: dict[int, Assignment] = field(default_factory=dict)
    rekeyed: dict[str, str] = field(default_factory=dict)
    unrouted: set[str] = field(default_factory=set)
    rerouted: dict[str, LeadScored] = field(default_factory=dict)


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
        aliases: AliasBook | None = None,
        owners: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    ) -> None:
        self.reps = dict(reps or {})
        # Per company domain loaded, its open assignments (assignment id, rep), oldest
        # first; assignments this batch makes join them, those it closes leave them.
        self._owners = {domain: list(rows) for domain, rows in (owners or {}).items()}
        self._ended: set[str] = set()
        self._history = {key: list(rows) for key, rows in (history or {}).items()}
        self._open = dict(open_leads or {})
        self._since = {s: dict(counts) for s, counts in (assigned_since or {}).items()}
        self._day_starts = dict(day_starts or {})
        self._turns = dict(turns or {})
        self._routed = dict(routed or {})
        self.aliases = aliases if aliases is not None else AliasBook()
        self.writes = Writes()

    # What decisions read.

    def history(self, lead_key: str) -> list[Assignment]:
        """Every assignment and queue entry of a lead, oldest first."""
        return self._history.get(lead_key, [])

    def current(self, lead_key: str) -> Assignment | None:
        """The lead's open assignment or queue entry, else its latest one not closed by a
        merge (an outcome coming late is the kept assignment's).

        A person has one open row at most; after a merge their closed rows (the other
        profile's, closed as `merged`) may come after it.
        """
        rows = self._history.get(lead_key)
        if not rows:
            return None
        open_row = next((row for row in reversed(rows) if row.closed_at is None), None)
        if open_row is not None:
            return open_row
        return next((row for row in reversed(rows) if row.close_reason != MERGED), rows[-1])

    def next_seq(self, lead_key: str) -> int:
        """The `seq` of the lead's next assignment or queue entry."""
        return max((row.seq for row in self._history.get(lead_key, ())), default=0) + 1

    def person(self, lead_key: str) -> str:
        """The key the person known by `lead_key` is known by now (the router's aliases)."""
        return self.aliases.canonical(lead_key)

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
        return RoutingState(
            reps, loads, last_turn, recent, conversions, frozenset(excluded), _Owners(self)
        )

    def owned_domains(self) -> KeysView[str]:
        """The company domains whose owners the batch loaded."""
        return self._owners.keys()

    def owners(self, domain: str) -> list[str]:
        """The reps holding an open lead of this company domain, the earliest first (none
        for a domain the batch did not load)."""
        rows = self._owners.get(domain, ())
        return list(dict.fromkeys(rep for aid, rep in rows if aid not in self._ended))

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
        if row.domain in self._owners and row.closed_at is None:
            self._owners[row.domain].append((row.assignment_id, rep))
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
        self._ended.add(row.assignment_id)
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

    def contact(self, row: Assignment, at: datetime) -> None:
        """Record the first contact (or acceptance) of the lead while `row` holds it."""
        if row.contacted_at is not None:
            return
        row.contacted_at = at
        self._changed(row)

    def merge(self, merge: Merge) -> list[str]:
        """Record a merge and move the state of every key that stopped meaning a person of
        its own to the survivor: its assignments (after the survivor's, numbered on), its
        decisions, its routed lead (when the survivor has none). Returns the survivors
        whose state grew, for the caller to keep one live assignment each."""
        moved = self.aliases.apply(merge)
        # The oldest assignments first: the person's history reads in the order it happened.
        for key in sorted(moved, key=self._first_assigned):
            self._move(key, moved[key])
        self.writes.aliases = self.aliases.changed()
        return sorted({root for key, root in moved.items() if root != key})

    def _first_assigned(self, key: str) -> tuple[bool, tuple[datetime, bool, int, str] | None, str]:
        rows = self._history.get(key)
        if not rows:
            return (True, None, key)
        return (False, rows[0].order(), key)

    def _move(self, key: str, root: str) -> None:
        rows = self._history.pop(key, [])
        if rows:
            target = self._history.setdefault(root, [])
            seq = self.next_seq(root)
            for row in rows:
                row.lead_key, row.seq, seq = root, seq, seq + 1
                if row.id is not None:
                    self.writes.moved[row.id] = row
            target.extend(rows)
        writes = self.writes
        for old, new in writes.rekeyed.items():
            if new == key:
                writes.rekeyed[old] = root
        writes.rekeyed[key] = root
        scored = self._routed.pop(key, None)
        writes.rerouted.pop(key, None)
        fresh = [s for s in writes.leads if s.lead_key == key]
        writes.leads = [s for s in writes.leads if s.lead_key != key]
        if scored is not None and not fresh:
            writes.unrouted.add(key)
        if scored is not None and root not in self._routed:
            taken = scored.model_copy(update={"lead_key": root})
            self._routed[root] = taken
            if fresh:
                writes.leads.append(taken)
            else:
                writes.rerouted[root] = taken

    def _changed(self, row: Assignment) -> None:
        if row.id is not None:
            self.writes.changed[row.id] = row


class _Owners(Mapping[str, Sequence[str]]):
    """A book's owners by company domain, read as a decision asks for one."""

    def __init__(self, book: RoutingBook) -> None:
        self._book = book

    def __getitem__(self, domain: str) -> Sequence[str]:
        if domain not in self._book.owned_domains():
            raise KeyError(domain)
        return self._book.owners(domain)

    def __iter__(self) -> Iterator[str]:
        return iter(self._book.owned_domains())

    def __len__(self) -> int:
        return len(self._book.owned_domains())
