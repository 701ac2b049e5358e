"""Routing a batch of events: load the book, decide event by event in memory, write back.

`route_batch` is the one use case: the consumers run it on the database
(`book_repository.SqlRoutingStore`), `leadflow simulate` and tests in memory
(`memory.InMemoryRoutingStore`), so a simulation cannot decide otherwise than the router.
Every function runs inside the caller's transaction and never commits. A batch (one event
or hundreds, in Kafka order) costs the same few statements:
1. read the run-time roster of the reps its decisions may touch (overrides, absences) and
   the scored leads that escalations route again;
2. lock the routing pools those decisions may touch (`pools.py`), all at once, in order;
3. load the leads' assignments, who holds open leads of their companies (when a routing
   rule is sticky), the reps' open and recent counts, the teams' turns and the batch
   positions taken at its instant (`aliases.assignment_order`);
4. apply each event in order to that state (`handlers.py`), so later events see earlier
   ones' assignments, turns and loads;
5. write back in bulk: assignments, decisions, turns, routed leads, outbox, notifications.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.aliases import AliasBook
from leadflow.config import LeadflowConfig, Rep
from leadflow.events import Envelope, LeadActivity, LeadScored, SlaAlert
from leadflow_router import domain, handlers, repository, roster
from leadflow_router.availability import cannot_take, local_day_start, off_duty, skip_kind
from leadflow_router.book import Assignment, RoutingBook, Writes
from leadflow_router.book_repository import SqlRoutingStore
from leadflow_router.distribution import pick
from leadflow_router.handlers import (
    CONTACTS,
    FINAL,
    HANDLERS,
    OUTCOMES,
    Batch,
    close_on_outcome,
    hand_over,
    observe,
    routes,
)
from leadflow_router.notify import NotifyOptions
from leadflow_router.pools import Reach, pools_of, reach, union
from leadflow_router.store import RoutingStore

__all__ = [
    "AWAY_KINDS",
    "CONTACTS",
    "OUTCOMES",
    "HandedOver",
    "ReassignRefused",
    "Refused",
    "Routed",
    "apply_events",
    "current_reps",
    "reassign_by_hand",
    "reassign_escalated",
    "record_activity",
    "redistribute_absent",
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
    deciding = [e.data for e in events if isinstance(e.data, LeadScored) and routes(config, e.data)]
    # A deciding score's person may have been routed at a lower tier (an upgrade routes
    # them again) or at its own or a higher one (it changes nothing): their routed lead says.
    scoring = {aliases.canonical(scored.lead_key) for scored in deciding}
    routed = await store.routed_leads(escalated | merging | scoring)
    again = [routed[key] for key in sorted(escalated | merging) if key in routed]
    # Only routing scores and escalations make assignments. Theirs number on after those
    # made at the same instant before (the consumer's runs of one Kafka batch share `now`).
    first = await store.positions_taken(now) if deciding or escalated else 0
    batch = Batch(config, options or NotifyOptions(), now, first_position=first)
    await load_book(store, batch, persons, [*deciding, *again], routed, aliases)
    decisions = []
    for event in events:
        handler = HANDLERS.get(event.type)
        decisions.append(handler(batch, event) if handler is not None else None)
    await save_batch(store, batch)
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
    """Route a lead when it enters a routed tier, or rises to a higher one (`handlers.route`)."""
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
    lead_keys = {entry.lead_key for entry in queued}
    batch = Batch(config, options or NotifyOptions(), now)
    store = SqlRoutingStore(session)
    routed = await store.routed_leads(lead_keys)
    await load_book(store, batch, lead_keys, list(routed.values()), routed)
    assigned = 0
    for entry in queued:
        # The entry as it stands under the lock: another router may have dequeued it since.
        history = batch.book.history(entry.lead_key)
        row = next((a for a in history if a.id == entry.id), None)
        if row is not None and handlers.dequeue(batch, row) is not None:
            assigned += 1
    await save_batch(store, batch)
    return [entry.id for entry in queued], assigned


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


async def load_book(
    store: RoutingStore,
    batch: Batch,
    lead_keys: Iterable[str],
    deciding: Iterable[LeadScored],
    routed: dict[str, LeadScored],
    aliases: AliasBook | None = None,
    locked: Reach | None = None,
) -> None:
    """Lock what the batch's decisions may touch (`locked`, else what the routing of the
    `deciding` leads may touch), then load the book they read."""
    config, now = batch.config, batch.now
    deciding = list(deciding)
    if locked is None:
        locked = union(batch.reach(scored) for scored in deciding)
    # The roster changes only through the admin API, never under the routing lock.
    reps = await reps_now(store, config, locked.reps, now)
    await store.lock(locked.pools)
    history = await store.history(set(lead_keys))
    # Who works the deciding leads' companies, read under the locks: a sticky rule's
    # owner is one of the reps of its team, whose pool is locked.
    domains = (
        {d for s in deciding if (d := domain.sticky_domain(config, s)) is not None}
        if domain.sticky(config)
        else set()
    )
    owners = await store.owners(domains) if domains else {}
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
        owners=owners,
    )
    batch.locked = locked


async def save_batch(store: RoutingStore, batch: Batch) -> None:
    """Write back what the batch changed and count its decisions."""
    writes = batch.book.writes
    await store.save(writes, batch.now)
    observe(writes.decided, batch.now)


class Refused(Exception):
    """Why a lead cannot be moved by hand: an HTTP status, a problem code, a sentence."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class ReassignRefused(Refused):
    """Why a lead cannot be reassigned by hand."""


@dataclass(frozen=True)
class HandedOver:
    """A lead moved outside routing: the assignment it left and the one it has now."""

    lead_key: str
    previous: Assignment
    assignment: Assignment


# Why a rep cannot be given a lead by hand (a manager may overrule shifts and caps, not
# a rep who is inactive or away).
AWAY_KINDS = ("inactive", "out_of_office")
MANUAL_REASON = "reassigned"
ABSENCE_REASON = "out_of_office"


async def reassign_by_hand(
    store: RoutingStore,
    config: LeadflowConfig,
    lead_key: str,
    rep_id: str,
    reason: str,
    now: datetime,
    options: NotifyOptions | None = None,
    *,
    actor: str,
) -> HandedOver:
    """Give the lead known by `lead_key` (any of the person's keys) to `rep_id` by hand.

    Refused (`ReassignRefused`) when the router holds no open assignment of the person
    (404: unknown, queued, or closed as merged), the lead is closed by an outcome
    (409), or the rep is not configured, already has it, is in no team the lead can go to
    (the current assignment's team, the teams and reps its routing reaches), or is inactive
    or out of office now (422). Shifts and caps do not stop a manager. A lead waiting in
    a team's pool is given too: its pool entry closes as `reassigned`.
    """
    await store.lock_leads({lead_key})
    aliases = await store.aliases({lead_key})
    person = aliases.canonical(lead_key)
    await store.lock_leads({person} - {lead_key})
    history = await store.history({person})
    routed = await store.routed_leads({person})
    book = RoutingBook(history=history, routed=routed, aliases=aliases)
    current = book.current(person)
    scored = book.routed_lead(person)
    if current is None or scored is None:
        raise ReassignRefused(404, "unknown_lead", f"The router has no lead {lead_key!r}.")
    if current.closed_at is not None and current.close_reason in FINAL:
        raise ReassignRefused(
            409,
            "lead_closed",
            f"Lead {lead_key!r} is closed ({current.close_reason}): there is nothing to reassign.",
        )
    # A lead waiting in a team's pool may be given by hand too: it leaves the pool.
    pooled = current.status == "pooled" and current.closed_at is None
    if not pooled and (
        current.closed_at is not None or current.status != "assigned" or current.rep_id is None
    ):
        raise ReassignRefused(
            404,
            "not_assigned",
            f"Lead {lead_key!r} is not assigned to anyone"
            + (" (it waits in the queue)." if current.status == "queued" else "."),
        )
    if not any(rep.id == rep_id for rep in config.reps):
        raise ReassignRefused(422, "unknown_rep", f"No rep with id {rep_id!r} is configured.")
    if rep_id == current.rep_id:
        raise ReassignRefused(422, "same_rep", f"Lead {lead_key!r} is already with {rep_id!r}.")
    team = _team_for(config, scored, current, rep_id, now)
    if team is None:
        raise ReassignRefused(
            422,
            "rep_not_eligible",
            f"{config.rep(rep_id).name} is in no team lead {lead_key!r} can go to "
            f"(team {current.team!r}, or the teams and reps its routing rules reach).",
        )
    rep = (await reps_now(store, config, [rep_id], now))[rep_id]
    away = off_duty(rep, now)
    if away is not None and skip_kind(away) in AWAY_KINDS:
        raise ReassignRefused(422, "rep_unavailable", f"{rep.name} cannot take leads now: {away}.")
    pools = pools_of(config)
    held = pools.of_rep(current.rep_id) if current.rep_id is not None else pools.of_team(team)
    where = Reach(frozenset({rep_id}), frozenset({team}), frozenset({pools.of_rep(rep_id), held}))
    await store.lock(where.pools)
    batch = Batch(config, options or NotifyOptions(), now)
    batch.book = book
    why = f"{actor} reassigned it by hand" + (f" ({reason})" if reason else "")
    decision = domain.Decision(
        "assigned",
        rule=current.rule,
        team=team,
        rep_id=rep_id,
        candidates=[rep_id],
        reason=f"{why}, from "
        + (f"team {current.team!r}'s pool" if pooled else _name(config, current.rep_id))
        + f" to {rep.name}",
        method="named_rep",
    )
    taken = hand_over(
        batch,
        current,
        decision,
        where,
        assignment_id=str(uuid.uuid4()),
        close_reason=MANUAL_REASON,
        why=why,
    )
    await save_batch(store, batch)
    return HandedOver(person, current, taken)


async def redistribute_absent(
    store: RoutingStore,
    config: LeadflowConfig,
    rep_id: str,
    now: datetime,
    options: NotifyOptions | None = None,
) -> tuple[list[HandedOver], list[str]]:
    """Hand the open leads `rep_id` has not contacted to the other reps of their team, when
    the team redistributes on absence (`teams[].redistribute_on_absence`): each through the
    team's distribution (its turns, weights or loads, skills and caps), the absent rep
    skipped, as a reassignment with reason `out_of_office`. A lead nobody in its team can
    take now stays where it is. Returns the leads moved and the keys of those that stayed.
    """
    teams = [t for t in config.teams if t.redistribute_on_absence and rep_id in t.reps]
    if not teams:
        return [], []
    held = await store.uncontacted(rep_id)
    if not held:
        return [], []
    await store.lock_leads(set(held))
    aliases = await store.aliases(set(held))
    persons = sorted({aliases.canonical(key) for key in held})
    await store.lock_leads(set(persons) - set(held))
    routed = await store.routed_leads(set(persons))
    pools = pools_of(config)
    names = frozenset(t.name for t in teams)
    reps = frozenset(r for t in teams for r in t.reps)
    locked = Reach(
        reps, names, frozenset({pools.of_team(n) for n in names} | {pools.of_rep(rep_id)})
    )
    batch = Batch(config, options or NotifyOptions(), now)
    await load_book(store, batch, persons, [], routed, aliases, locked)
    book = batch.book
    absent = config.rep(rep_id).name
    moved: list[HandedOver] = []
    stayed: list[str] = []
    for person in persons:
        current = book.current(person)
        scored = book.routed_lead(person)
        if (
            current is None
            or scored is None
            or current.rep_id != rep_id
            or current.closed_at is not None
            or current.contacted_at is not None
            or current.team not in names
        ):
            continue
        team = config.team(current.team)
        where = Reach(frozenset(team.reps), frozenset({team.name}), locked.pools)
        state = book.state(config, now, where, {rep_id})
        skipped = {
            r: why
            for r in team.reps
            if (
                why := cannot_take(
                    state.reps[r],
                    now,
                    state.loads[r],
                    lead=scored.lead,
                    skills=team.skills,
                    excluded=state.excluded,
                )
            )
            is not None
        }
        available = [r for r in team.reps if r not in skipped]
        if not available:
            stayed.append(person)
            continue
        chosen = pick(
            team,
            available,
            reps=state.reps,
            last=state.last_turn.get(team.name),
            open_leads={r: state.loads[r].open for r in team.reps},
            recent=state.recent.get(team.name, {}),
            conversions=state.conversions.get(team.name, {}),
        )
        name = state.reps[chosen.rep_id].name
        why = f"{absent} is out of office"
        decision = domain.Decision(
            "assigned",
            rule=current.rule,
            team=team.name,
            rep_id=chosen.rep_id,
            candidates=list(team.reps),
            skipped={r: w for r, w in skipped.items() if r != rep_id},
            reason=f"{why}; team {team.name!r} redistributes: {chosen.how.format(rep=name)}",
            method=team.distribution,
            details=chosen.details,
        )
        taken = hand_over(
            batch,
            current,
            decision,
            where,
            assignment_id=str(uuid.uuid4()),
            close_reason=ABSENCE_REASON,
            why=why,
        )
        moved.append(HandedOver(person, current, taken))
    await save_batch(store, batch)
    return moved, stayed


def _team_for(
    config: LeadflowConfig, scored: LeadScored, current: Assignment, rep_id: str, now: datetime
) -> str | None:
    """The team a lead given by hand to `rep_id` goes to: the current assignment's when the
    rep is in it, else the first of the rep's teams its routing reaches, else the rep's first
    team (the fallback team for a rep in none, as routing queues for them) when the routing
    names the rep (an account owner, a rule's rep); None when the rep is in no team the
    lead can go to."""
    if rep_id in config.team(current.team).reps:
        return current.team
    reached = reach(config, scored, now)
    for team in config.teams:
        if team.name in reached.teams and rep_id in team.reps:
            return team.name
    if rep_id in reached.reps:
        own = config.team_of(rep_id)
        return own.name if own is not None else config.routing.fallback_team
    return None


def _name(config: LeadflowConfig, rep_id: str | None) -> str:
    return next((rep.name for rep in config.reps if rep.id == rep_id), rep_id or "nobody")
