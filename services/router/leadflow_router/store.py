"""Where the router's state lives between batches, and what a batch reads of it and writes.

Routing a batch is three steps: load the book its events need, apply the events one by one
to it in Kafka order (`handlers.py`), save what they wrote (`RoutingStore.save`). The use
case (`service.route_batch`) is written once, over this protocol: the database store
(`book_repository.SqlRoutingStore`, a few statements per batch whatever its size) serves
the consumers, the in-memory one (`memory.InMemoryRoutingStore`) `leadflow simulate` and
tests, so a simulation decides as the router does.

Loading is split into the reads the use case makes, in this order, because each needs the
one before: the locks on the people the batch names and their aliases (what key each of
them is known by now), the scored leads escalations route again and merges move (for what
their decisions may touch),
the run-time roster of the reps those decisions may touch (for the start of each rep's
day), the locks on their routing pools, then under the locks the leads' assignments, who
holds open leads of their companies (sticky rules only), the reps' counts since each
instant and the teams' turns.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from leadflow.aliases import AliasBook
from leadflow.events import LeadScored
from leadflow_router.book import Assignment, Turns, Writes

# Each rep's open leads, and per instant each rep's leads assigned and converted since:
# `({rep: open}, {since: {rep: [assigned, converted]}})`, every rep and instant present.
Tallies = tuple[dict[str, int], dict[datetime, dict[str, list[int]]]]


class RunTimeRoster(NamedTuple):
    """What the admin API changed about reps: overrides, and absences not ended yet."""

    overrides: Mapping[str, Mapping[str, Any]]
    # rep -> (start, end, note) of each absence, by start.
    absences: Mapping[str, list[tuple[datetime, datetime, str]]]


class RoutingStore(Protocol):
    """Where the router's assignments, turns, routed leads, aliases and run-time roster live."""

    async def lock_leads(self, lead_keys: Collection[str]) -> None:
        """Hold these people until the batch is saved (all at once, in one order)."""
        ...

    async def aliases(self, lead_keys: Collection[str]) -> AliasBook:
        """The router's aliases of every person these keys name (each key's person, and
        every other key of that person): what a merge of these keys needs."""
        ...

    async def routed_leads(self, lead_keys: Collection[str]) -> dict[str, LeadScored]:
        """The scored leads as they were first routed, by lead key."""
        ...

    async def roster(self, rep_ids: Collection[str], now: datetime) -> RunTimeRoster:
        """The run-time changes to these reps standing at `now` (read before the locks)."""
        ...

    async def lock(self, pools: Collection[str]) -> None:
        """Hold the routing pools until the batch is saved (all at once, in one order)."""
        ...

    async def history(self, lead_keys: Collection[str]) -> dict[str, list[Assignment]]:
        """Every assignment and queue entry of these leads, oldest first (the batch's own
        copies: changing them changes nothing stored)."""
        ...

    async def tallies(self, reps: Collection[str], sinces: Iterable[datetime]) -> Tallies:
        """Each rep's open leads, and per instant their leads assigned (and converted) since."""
        ...

    async def turns(self, teams: Collection[str]) -> dict[str, Turns]:
        """The round-robin pointers of these teams (a team that never had a turn has none)."""
        ...

    async def uncontacted(self, rep_id: str) -> list[str]:
        """The leads the rep holds (open assignments) and has not contacted, oldest first
        (what marking them out of office may hand on)."""
        ...

    async def owners(self, domains: Collection[str]) -> dict[str, list[tuple[str, str]]]:
        """Per company domain, its open assignments (not closed, a rep holding them) as
        (assignment id, rep), oldest first, every domain asked for present: who works each
        company, for sticky routing rules (read under the pool locks)."""
        ...

    async def unclaimed(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """Pool entries nobody claimed by their due time and nobody acted on yet, as
        (assignment id, lead key), the longest overdue first (read before any lock)."""
        ...

    async def take_unclaimed(self, assignment_ids: Collection[str], now: datetime) -> set[str]:
        """Mark these overdue pool entries as acted on (manager told, fallback given);
        returns those this call marked: each entry is acted on once, whoever asks."""
        ...

    async def claim(self, assignment_id: str, at: datetime) -> bool:
        """Close the pool entry `assignment_id` as `claimed` if it is still open (in one
        conditional step); whether this call closed it."""
        ...

    async def positions_taken(self, now: datetime) -> int:
        """The first batch position the assignments stored at `now` left free (0 if none):
        where a batch at the same instant numbers its own on."""
        ...

    async def save(self, writes: Writes, now: datetime) -> None:
        """Write what a batch changed: aliases, routed leads, assignments and decisions moved
        to a survivor, closed and converted assignments, turns, new assignments, decisions,
        events to publish and notifications."""
        ...
