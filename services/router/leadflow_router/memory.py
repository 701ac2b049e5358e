"""The router's store in memory: for `leadflow simulate` and tests, with no database.

It keeps what the router's tables keep (assignments, round-robin pointers, routed leads,
decisions, the outbox and notifications, rep overrides and absences) and answers each read
as the database store's statement does: open leads are a rep's assignments not closed,
"assigned since" counts assignments (never queue entries) from an instant on. Each rep's
assignments are indexed by time, so a batch's reads cost what the batch touches, not what
the store holds. A batch works on copies of the rows it loads, and `save` checks the
tables' unique keys before changing anything: a batch that fails leaves the store as it was.

Run-time roster changes (`overrides`, `absences`) are empty unless a caller sets them, as
on a database the admin API never changed: the reps are the configuration's.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from leadflow.aliases import AliasBook
from leadflow.delivery import Notification
from leadflow.events import Envelope, LeadScored
from leadflow_router.book import Assignment, Decided, PoolEntry, Turns, Writes
from leadflow_router.store import RunTimeRoster, Tallies


class InMemoryRoutingStore:
    """Assignments, turns, routed leads and what the router published, kept in memory."""

    def __init__(self) -> None:
        # What the admin API would have stored: rep -> overrides (as `rep_overrides.settings`),
        # rep -> (start, end, note) absences (`rep_absences`, none cancelled).
        self.overrides: dict[str, dict[str, Any]] = {}
        self.absences: dict[str, list[tuple[datetime, datetime, str]]] = {}
        # `routing_decisions`, the outbox and the notifications queue, in the order written.
        self.decided: list[Decided] = []
        self.events: list[Envelope] = []
        self.notifications: list[Notification] = []
        self._rows: list[Assignment] = []  # every assignment; a row's id is its index + 1
        self._leads: dict[str, list[Assignment]] = {}
        self._by_id: dict[str, Assignment] = {}  # by assignment_id
        self._by_domain: dict[str, list[Assignment]] = {}  # by company domain, in order
        self._open: Counter[str] = Counter()
        # Per rep, when each of their assignments (and each converted one) was made, sorted.
        self._assigned: dict[str, list[datetime]] = {}
        self._converted: dict[str, list[datetime]] = {}
        self._turns: dict[str, tuple[str | None, int]] = {}
        self._routed: dict[str, LeadScored] = {}
        self._aliases = AliasBook()
        # Where each decision is in `decided`, by its lead's key (for merges to move them).
        self._decided_by_key: dict[str, list[int]] = {}
        # `pooled_leads`: each pool entry, and when its overdue entry was acted on.
        self.pooled: dict[str, PoolEntry] = {}
        self.alerted: dict[str, datetime] = {}
        # Per instant, the first batch position the assignments made then left free.
        self._positions: dict[datetime, int] = {}

    @property
    def assignments(self) -> list[Assignment]:
        """Every stored assignment and queue entry, in the order written (copies)."""
        return [replace(row) for row in self._rows]

    # Reads.

    async def routed_leads(self, lead_keys: Collection[str]) -> dict[str, LeadScored]:
        """The scored leads as they were first routed, by lead key."""
        return {key: self._routed[key] for key in lead_keys if key in self._routed}

    async def roster(self, rep_ids: Collection[str], now: datetime) -> RunTimeRoster:
        """Overrides of these reps, and their absences not ended at `now`, by start."""
        overrides = {r: dict(self.overrides[r]) for r in rep_ids if r in self.overrides}
        absences = {}
        for rep_id in rep_ids:
            standing = sorted((a for a in self.absences.get(rep_id, ()) if a[1] > now), key=_start)
            if standing:
                absences[rep_id] = standing
        return RunTimeRoster(overrides, absences)

    async def lock(self, pools: Collection[str]) -> None:
        """Nothing to hold: an in-memory store applies one batch at a time."""

    async def lock_leads(self, lead_keys: Collection[str]) -> None:
        """Nothing to hold: an in-memory store applies one batch at a time."""

    async def aliases(self, lead_keys: Collection[str]) -> AliasBook:
        """The aliases of every person these keys name (a copy of their rows)."""
        wanted = {k for key in lead_keys for k in self._aliases.keys_of(key)}
        return AliasBook(self._aliases.rows_of(wanted))

    def person(self, lead_key: str) -> str:
        """The key the person known by `lead_key` is known by now."""
        return self._aliases.canonical(lead_key)

    async def history(self, lead_keys: Collection[str]) -> dict[str, list[Assignment]]:
        """Copies of every assignment and queue entry of these leads, oldest first."""
        return {
            key: [replace(row) for row in self._leads[key]]
            for key in lead_keys
            if key in self._leads
        }

    async def tallies(self, reps: Collection[str], sinces: Iterable[datetime]) -> Tallies:
        """Each rep's open leads, and per instant their leads assigned (and converted) since."""
        open_leads = {rep: self._open[rep] for rep in reps}
        counts = {
            since: {
                rep: [
                    self._since(self._assigned, rep, since),
                    self._since(self._converted, rep, since),
                ]
                for rep in reps
            }
            for since in sorted(set(sinces))
        }
        return open_leads, counts

    async def turns(self, teams: Collection[str]) -> dict[str, Turns]:
        """The round-robin pointers of these teams (copies)."""
        return {t: Turns(*self._turns[t]) for t in teams if t in self._turns}

    async def uncontacted(self, rep_id: str) -> list[str]:
        """The leads the rep holds and has not contacted, oldest first."""
        held = [
            row
            for row in self._rows
            if row.rep_id == rep_id
            and row.status == "assigned"
            and row.closed_at is None
            and row.contacted_at is None
        ]
        return [row.lead_key for row in sorted(held, key=_held)]

    async def owners(self, domains: Collection[str]) -> dict[str, list[tuple[str, str]]]:
        """Per company domain, its open assignments as (assignment id, rep), oldest first."""
        found: dict[str, list[tuple[str, str]]] = {}
        for domain in domains:
            held = [
                row
                for row in self._by_domain.get(domain, ())
                if row.status == "assigned" and row.closed_at is None and row.rep_id is not None
            ]
            found[domain] = [
                (row.assignment_id, str(row.rep_id)) for row in sorted(held, key=_held)
            ]
        return found

    async def unclaimed(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """Pool entries overdue and not acted on, as (assignment id, lead key)."""
        due = sorted(
            (entry.due_at, aid)
            for aid, entry in self.pooled.items()
            if entry.due_at <= now
            and aid not in self.alerted
            and self._by_id[aid].closed_at is None
        )
        return [(aid, self._by_id[aid].lead_key) for _, aid in due[:limit]]

    async def take_unclaimed(self, assignment_ids: Collection[str], now: datetime) -> set[str]:
        """Mark overdue pool entries as acted on; those this call marked."""
        taken = {aid for aid in assignment_ids if aid in self.pooled and aid not in self.alerted}
        for aid in taken:
            self.alerted[aid] = now
        return taken

    async def claim(self, assignment_id: str, at: datetime) -> bool:
        """Close a pool entry as claimed if it is still open; whether this call did."""
        row = self._by_id.get(assignment_id)
        if row is None or row.status != "pooled" or row.closed_at is not None:
            return False
        row.closed_at, row.close_reason = at, "claimed"
        return True

    @staticmethod
    def _since(index: dict[str, list[datetime]], rep: str, since: datetime) -> int:
        times = index.get(rep, [])
        return len(times) - bisect_left(times, since)

    # Writes.

    async def positions_taken(self, now: datetime) -> int:
        """The first batch position the assignments made at `now` left free."""
        return self._positions.get(now, 0)

    async def save(self, writes: Writes, now: datetime) -> None:
        """Keep what a batch changed, in the order the database store writes it."""
        self._check(writes)
        self._merge(writes)
        for scored in [*writes.leads, *writes.rerouted.values()]:
            self._routed[scored.lead_key] = scored
        for row_id, row in sorted(writes.changed.items()):
            self._change(self._rows[row_id - 1], row)
        for team, turns in writes.turns.items():
            self._turns[team] = (turns.last_rep_id, turns.turns)
        for row in writes.assignments:
            self._insert(row)
        for entry in writes.pooled:
            self.pooled[entry.assignment_id] = entry
        for one in writes.decided:
            self._decided_by_key.setdefault(one.assignment.lead_key, []).append(len(self.decided))
            self.decided.append(one)
        self.events.extend(writes.events)
        self.notifications.extend(writes.notifications)

    def _merge(self, writes: Writes) -> None:
        """Keep what merges changed: aliases, moved assignments, decisions, routed leads."""
        self._aliases.keep(writes.aliases)
        for row_id, row in sorted(writes.moved.items()):
            stored = self._rows[row_id - 1]
            self._leads[stored.lead_key].remove(stored)
            if not self._leads[stored.lead_key]:
                del self._leads[stored.lead_key]
            stored.lead_key, stored.seq = row.lead_key, row.seq
            insort(self._leads.setdefault(row.lead_key, []), stored, key=_seq)
        for old, new in sorted(writes.rekeyed.items()):
            for index in self._decided_by_key.pop(old, []):
                one = self.decided[index]
                self.decided[index] = replace(one, assignment=replace(one.assignment, lead_key=new))
                self._decided_by_key.setdefault(new, []).append(index)
        for key in writes.unrouted | set(writes.rerouted):
            self._routed.pop(key, None)

    def _check(self, writes: Writes) -> None:
        """Refuse, before changing anything, what the tables' keys would refuse."""
        keys = [s.lead_key for s in [*writes.leads, *writes.rerouted.values()]]
        gone = writes.unrouted | set(writes.rerouted)
        if len(set(keys)) < len(keys) or any(
            key in self._routed and key not in gone for key in keys
        ):
            raise ValueError("a lead was routed for the first time twice; nothing was saved.")
        if any(not (0 < row_id <= len(self._rows)) for row_id in writes.moved):
            raise ValueError("a moved assignment was never stored; nothing was saved.")
        seqs = [(row.lead_key, row.seq) for row in writes.assignments]
        ids = [row.assignment_id for row in writes.assignments]
        moving = set(writes.moved)
        stored = {
            (key, row.seq)
            for key, _ in seqs
            for row in self._leads.get(key, ())
            if row.id not in moving
        } | {(row.lead_key, row.seq) for row in writes.moved.values()}
        if (
            len(set(seqs)) < len(seqs)
            or stored & set(seqs)
            or len(set(ids)) < len(ids)
            or any(i in self._by_id for i in ids)
        ):
            raise ValueError("an assignment was written twice; nothing was saved.")
        if any(not (0 < row_id <= len(self._rows)) for row_id in writes.changed):
            raise ValueError("a changed assignment was never stored; nothing was saved.")
        if any(not t.stored and team in self._turns for team, t in writes.turns.items()):
            raise ValueError("a team's first turn was given twice; nothing was saved.")

    def _insert(self, row: Assignment) -> None:
        stored = replace(row, id=len(self._rows) + 1)
        self._rows.append(stored)
        if stored.batch_position is not None:
            at, taken = stored.assigned_at, self._positions.get(stored.assigned_at, 0)
            self._positions[at] = max(taken, stored.batch_position + 1)
        self._leads.setdefault(stored.lead_key, []).append(stored)
        self._by_id[stored.assignment_id] = stored
        if stored.domain is not None:
            self._by_domain.setdefault(stored.domain, []).append(stored)
        rep = stored.rep_id
        if stored.status != "assigned" or rep is None:
            return
        if stored.closed_at is None:
            self._open[rep] += 1
        insort(self._assigned.setdefault(rep, []), stored.assigned_at)
        if stored.converted_at is not None:
            insort(self._converted.setdefault(rep, []), stored.assigned_at)

    def _change(self, stored: Assignment, new: Assignment) -> None:
        """Set only what is still unset, as the database store's update does."""
        rep = stored.rep_id if stored.status == "assigned" else None
        if stored.closed_at is None:
            if new.close_reason is not None:
                stored.close_reason = new.close_reason
            if new.closed_at is not None:
                stored.closed_at = new.closed_at
                if rep is not None:
                    self._open[rep] -= 1
        if stored.contacted_at is None and new.contacted_at is not None:
            stored.contacted_at = new.contacted_at
        if stored.converted_at is None and new.converted_at is not None:
            stored.converted_at = new.converted_at
            if rep is not None:
                insort(self._converted.setdefault(rep, []), stored.assigned_at)


def _start(absence: tuple[datetime, datetime, str]) -> datetime:
    return absence[0]


def _seq(row: Assignment) -> int:
    return row.seq


def _held(row: Assignment) -> tuple[datetime, int]:
    return (row.assigned_at, row.id or 0)
