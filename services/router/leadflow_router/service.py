"""Routing a batch of events: load the book, decide event by event in memory, write back.

`route_batch` is the one use case: the consumers run it on the database
(`book_repository.SqlRoutingStore`), `leadflow simulate` and tests in memory
(`memory.InMemoryRoutingStore`), so a simulation cannot decide otherwise than the router.
Every function runs inside the caller's transaction and never commits. A batch (one event
or hundreds, in Kafka order) costs the same few statements:
1. read the run-time roster of the reps its decisions may touch (overrides, absences) and
   the scored leads that escalations route again;
2. lock the routing pools those decisions may touch (`pools.py`), all at once, in order;
3. load the leads' assignments, the reps' open and recent counts and the teams' turns;
4. apply each event in order to that state (`handlers.py`), so later events see earlier
   ones' assignments, turns and loads;
5. write back in bulk: assignments, decisions, turns, routed leads, outbox, notifications.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.aliases import AliasBook
from leadflow.config import LeadflowConfig, Rep
from leadflow.events import Envelope, LeadActivity, LeadScored, SlaAlert
from leadflow_router import domain, handlers, repository, roster
from leadflow_router.availability import local_day_start
from leadflow_router.book import RoutingBook, Writes
from leadflow_router.book_repository import SqlRoutingStore
from leadflow_router.handlers import HANDLERS, OUTCOMES, Batch, close_on_outcome, observe, routes
from leadflow_router.notify import NotifyOptions
from leadflow_router.pools import union
from leadflow_router.store import RoutingStore

__all__ = [
    "OUTCOMES",
    "Routed",
    "apply_events",
    "current_reps",
    "reassign_escalated",
    "record_activity",
    "retry_queued",
    "route_batch",
    "route_scored",
]


@dataclass(frozen=True)
class Routed:
    """What a batch did: each event's decision (None: it decided nothing), and its writes
    (`writes.assignments` made, `writes.events` to publish, notifications, decisions)."""

    decisions: list[domain.Decision | None]
    writes: Writes


async def route_batch(
    store: RoutingStore,
    events: Sequence[Envelope],
    config: LeadflowConfig,
    now: datetime,
    options: NotifyOptions | None = None,
) -> Routed:
    """Apply the router's events in order (scores, escalations, CRM outcomes) to the state
    in `store`, and save what they wrote."""
    batch = Batch(config, options or NotifyOptions(), now)
    # Scores that call for no routing and merge nothing (most of them) need nothing loaded.
    named = _named(config, events)
    # Whoever merges or routes a person's keys holds them: a profile routed while another
    # router merges it away would otherwise keep an assignment under a key nobody reads.
    await store.lock_leads(named)
    aliases = await store.aliases(named)
    persons = {aliases.canonical(key) for key in named}
    await store.lock_leads(persons - named)
    escalated = {aliases.canonical(e.data.lead_key) for e in events if isinstance(e.data, SlaAlert)}
    merging = {
        aliases.canonical(key)
        for e in events
        if (merge := handlers.merge_in(e.data)) is not None
        for key in merge.named()
    }
    routed = await store.routed_leads(escalated | merging)
    deciding = [e.data for e in events if isinstance(e.data, LeadScored) and routes(config, e.data)]
    await _load(store, batch, persons, [*deciding, *routed.values()], routed, aliases)
    decisions = []
    for event in events:
        handler = HANDLERS.get(event.type)
        decisions.append(handler(batch, event) if handler is not None else None)
    await _save(store, batch)
    return Routed(decisions, batch.book.writes)


async def apply_events(
    session: AsyncSession,
    events: Sequence[Envelope],
    config: LeadflowConfig,
    now: datetime,
    options: NotifyOptions | None = None,
) -> list[domain.Decision | None]:
    """Apply the router's events in order on the database (the consumers' batch handler);
    returns the decision each one took, or None."""
    routed = await route_batch(SqlRoutingStore(session), events, config, now, options)
    return routed.decisions


async def route_scored(
    session: AsyncSession,
    event: Envelope,
    config: LeadflowConfig,
    now: datetime,
    options: NotifyOptions | None = None,
) -> domain.Decision | None:
    """Route a lead the first time it qualifies; later scores of a routed lead change nothing."""
    [decision] = await apply_events(session, [event], config, now, options)
    return decision


async def reassign_escalated(
    session: AsyncSession,
    event: Envelope,
    config: LeadflowConfig,
    now: datetime,
    options: NotifyOptions | None = None,
) -> domain.Decision | None:
    """Pick again for an escalated lead, excluding every rep who already had it."""
    [decision] = await apply_events(session, [event], config, now, options)
    return decision


async def record_activity(session: AsyncSession, event: Envelope) -> None:
    """Close the lead's assignment on a final outcome; credit conversions to the rep."""
    activity = event.data
    assert isinstance(activity, LeadActivity)
    if event.type not in OUTCOMES:
        return
    store = SqlRoutingStore(session)
    keys = handlers.outcome_keys(activity)
    aliases = await store.aliases(keys)
    persons = {aliases.canonical(key) for key in keys}
    book = RoutingBook(history=await store.history(persons), aliases=aliases)
    close_on_outcome(book, event)
    await store.save(book.writes, activity.occurred_at)


async def retry_queued(
    session: AsyncSession,
    config: LeadflowConfig,
    now: datetime,
    options: NotifyOptions | None = None,
    *,
    after_id: int = 0,
    limit: int = 100,
) -> tuple[list[int], int]:
    """Try queued leads again (a page after `after_id`); returns the entry ids seen and how
    many left the queue."""
    queued = await repository.queued_leads(session, after_id, limit)
    lead_keys = {str(entry["lead_key"]) for entry in queued}
    batch = Batch(config, options or NotifyOptions(), now)
    store = SqlRoutingStore(session)
    routed = await store.routed_leads(lead_keys)
    await _load(store, batch, lead_keys, list(routed.values()), routed)
    assigned = 0
    for entry in queued:
        # The entry as it stands under the lock: another router may have dequeued it since.
        history = batch.book.history(str(entry["lead_key"]))
        row = next((a for a in history if a.id == entry["id"]), None)
        if row is not None and handlers.dequeue(batch, row) is not None:
            assigned += 1
    await _save(store, batch)
    return [int(entry["id"]) for entry in queued], assigned


async def current_reps(
    session: AsyncSession, config: LeadflowConfig, rep_ids: Iterable[str], now: datetime
) -> dict[str, Rep]:
    """Reps as they stand now: configuration, then run-time overrides and absences."""
    return await reps_now(SqlRoutingStore(session), config, rep_ids, now)


async def reps_now(
    store: RoutingStore, config: LeadflowConfig, rep_ids: Iterable[str], now: datetime
) -> dict[str, Rep]:
    """Reps as they stand now in `store`: configuration, then run-time overrides and absences."""
    ids = sorted(set(rep_ids))
    if not ids:
        return {}
    stored, absent = await store.roster(ids, now)
    return {
        rep_id: roster.effective(config.rep(rep_id), stored.get(rep_id, {}), absent.get(rep_id, []))
        for rep_id in ids
    }


def _named(config: LeadflowConfig, events: Sequence[Envelope]) -> set[str]:
    """Every key the batch's events name that the router must look up: those of scores that
    route or merge, merges, escalations and outcomes."""
    keys: set[str] = set()
    for event in events:
        data = event.data
        if event.type not in HANDLERS:
            continue
        if isinstance(data, LeadScored) and not routes(config, data) and not data.merged_from:
            continue
        keys |= handlers.named_keys(data)
    return keys


async def _load(
    store: RoutingStore,
    batch: Batch,
    lead_keys: Iterable[str],
    deciding: Iterable[LeadScored],
    routed: dict[str, LeadScored],
    aliases: AliasBook | None = None,
) -> None:
    """Lock what the batch's decisions may touch, then load the book they read."""
    config, now = batch.config, batch.now
    locked = union(batch.reach(scored) for scored in deciding)
    # The roster changes only through the admin API, never under the routing lock.
    reps = await reps_now(store, config, locked.reps, now)
    await store.lock(locked.pools)
    history = await store.history(set(lead_keys))
    day_starts = {rep_id: local_day_start(rep, now) for rep_id, rep in reps.items()}
    sinces = set(day_starts.values())
    for name in locked.teams:
        team = config.team(name)
        if team.distribution == "weighted":
            sinces.add(now - team.balance_window)
            if team.weights == "conversion":
                sinces.add(now - team.conversion_window)
    open_leads, assigned_since = await store.tallies(locked.reps, sinces)
    batch.book = RoutingBook(
        reps=reps,
        history=history,
        open_leads=open_leads,
        assigned_since=assigned_since,
        day_starts=day_starts,
        turns=await store.turns(locked.teams),
        routed=routed,
        aliases=aliases,
    )
    batch.locked = locked


async def _save(store: RoutingStore, batch: Batch) -> None:
    writes = batch.book.writes
    await store.save(writes, batch.now)
    observe(writes.decided, batch.now)
