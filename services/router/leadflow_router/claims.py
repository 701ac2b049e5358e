"""The general pool: a rep claims a lead waiting in their team's pool, first come, first
served; a lead nobody claimed in time is reported to the manager and, per the team's
fallback, given through the team's distribution.

A routing decision that sends a lead to a team with `pool` leaves it there: an `assignments`
row with status `pooled` (no rep; the person's history as any queue entry) and a
`pooled_leads` row with the instant nobody having claimed it becomes news
(`pool.unclaimed_after` later). Both use cases below are written over `RoutingStore`, so
they run on the database and in memory alike, inside the caller's transaction.

* `claim_lead`: the person is locked and the pool entry closed as `claimed` by one
  conditional step (`RoutingStore.claim`: an UPDATE of the row only while it is open), so of
  two reps claiming at once exactly one gets it; the claim is recorded as a decision (kind
  `claim`, method `claim`) and published as `lead.assigned` through the outbox in the same
  transaction. With `sla_starts: arrival` the event's `clock_from` is the arrival in the
  pool, so the SLA monitor starts the claimer's clock there.
* `act_on_unclaimed`: the router's timer reads the overdue entries, locks their people and
  their teams' routing pools, marks them acted on (`RoutingStore.take_unclaimed`: only
  entries nobody marked yet, so two routers never act on one twice), emails the manager
  once (dedupe key per entry) and, with `fallback: distribute`, gives the lead through the
  team's distribution (`domain.distribute`: turns, weights or loads, shifts, skills and
  caps; the team's queue when nobody can take it now) as kind `unclaimed`, the new
  assignment id derived from the entry's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from leadflow.config import LeadflowConfig, Team
from leadflow.events import derived_event_id
from leadflow_router import domain
from leadflow_router.availability import off_duty, skip_kind
from leadflow_router.book import Assignment, RoutingBook
from leadflow_router.handlers import Batch, previous_reps, record
from leadflow_router.notify import NotifyOptions, unclaimed_notifications
from leadflow_router.pools import Reach, pools_of
from leadflow_router.service import AWAY_KINDS, Refused, load_book, reps_now, save_batch
from leadflow_router.store import RoutingStore

# Why a pool entry closed: a rep claimed it, or nobody did in time and the team's
# distribution gave it.
CLAIMED = "claimed"
UNCLAIMED = "unclaimed"


class ClaimRefused(Refused):
    """Why a rep cannot claim a lead."""


@dataclass(frozen=True)
class Claimed:
    """A lead a rep took from a pool: the pool entry it left and the assignment it has now."""

    lead_key: str
    entry: Assignment
    assignment: Assignment


@dataclass(frozen=True)
class Unclaimed:
    """What one pass of the pool timer did: entries acted on, and how many a rep got."""

    acted_on: list[str]
    distributed: int


def waited(delta: timedelta) -> str:
    """A wait as people say it: `45 s`, `12 min`, `3 h 5 min`."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def pool_entry(rows: Sequence[Assignment]) -> Assignment | None:
    """The person's latest pool entry, open or not (None: they never waited in a pool)."""
    return next((row for row in reversed(rows) if row.status == "pooled"), None)


def _team(config: LeadflowConfig, name: str) -> Team | None:
    return next((team for team in config.teams if team.name == name), None)


def _name(config: LeadflowConfig, rep_id: str | None) -> str:
    return next((rep.name for rep in config.reps if rep.id == rep_id), rep_id or "nobody")


async def claim_lead(
    store: RoutingStore,
    config: LeadflowConfig,
    lead_key: str,
    rep_id: str,
    now: datetime,
    options: NotifyOptions | None = None,
) -> Claimed:
    """Give the lead waiting in a pool under `lead_key` (any of the person's keys) to
    `rep_id`, a rep of that pool's team.

    Refused (`ClaimRefused`) when the router holds no pool entry of the person (404), the
    rep is not in the pool's team (403), the lead left the pool (409: claimed by someone,
    the rep holding it named; or given by the team's distribution, by hand, or merged), or
    the rep is inactive or out of office now (422). Shifts and caps do not stop a claim: the
    rep chose to take the lead.
    """
    await store.lock_leads({lead_key})
    aliases = await store.aliases({lead_key})
    person = aliases.canonical(lead_key)
    await store.lock_leads({person} - {lead_key})
    book = RoutingBook(
        history=await store.history({person}),
        routed=await store.routed_leads({person}),
        aliases=aliases,
    )
    entry = pool_entry(book.history(person))
    scored = book.routed_lead(person)
    team = _team(config, entry.team) if entry is not None else None
    if entry is None or scored is None or team is None:
        raise ClaimRefused(404, "not_pooled", f"Lead {lead_key!r} is not waiting in any pool.")
    if rep_id not in team.reps:
        raise ClaimRefused(
            403,
            "not_in_team",
            f"{_name(config, rep_id)} is not in team {team.name!r}, whose pool lead "
            f"{lead_key!r} waits in: only its reps can claim it.",
        )
    if entry.closed_at is not None:
        raise _left_pool(config, book, person, lead_key, entry)
    rep = (await reps_now(store, config, [rep_id], now))[rep_id]
    away = off_duty(rep, now)
    # A rep who cannot take leads at all right now cannot claim one either.
    if away is not None and skip_kind(away) in AWAY_KINDS:
        raise ClaimRefused(422, "rep_unavailable", f"{rep.name} cannot take leads now: {away}.")
    pools = pools_of(config)
    where = Reach(
        frozenset({rep_id}),
        frozenset({team.name}),
        frozenset({pools.of_rep(rep_id), pools.of_team(team.name)}),
    )
    await store.lock(where.pools)
    if not await store.claim(entry.assignment_id, now):
        # Another claim closed the entry between our read and our update (a store that
        # does not lock people): the conditional update is what decides.
        raise ClaimRefused(
            409,
            "already_claimed",
            f"Lead {lead_key!r} was claimed by another rep a moment ago.",
        )
    batch = Batch(config, options or NotifyOptions(), now)
    batch.book = book
    book.close(entry, CLAIMED, now)
    pool = team.pool
    decision = domain.Decision(
        "assigned",
        rule=entry.rule,
        team=team.name,
        rep_id=rep_id,
        candidates=[rep_id],
        reason=f"claimed by {rep.name} from team {team.name!r}'s pool "
        f"after {waited(now - entry.assigned_at)}",
        method="claim",
    )
    record(
        batch,
        scored,
        decision,
        where,
        assignment_id=derived_event_id("claim", entry.assignment_id),
        seq=book.next_seq(person),
        kind="claim",
        previous=previous_reps(book.history(person)),
        clock_from=entry.assigned_at if pool is not None and pool.sla_starts == "arrival" else None,
    )
    await save_batch(store, batch)
    return Claimed(person, entry, book.history(person)[-1])


def _left_pool(
    config: LeadflowConfig, book: RoutingBook, person: str, lead_key: str, entry: Assignment
) -> ClaimRefused:
    """The refusal of a claim on a lead that no longer waits: who holds it, or why not."""
    current = book.current(person)
    holder = current.rep_id if current is not None else None
    if entry.close_reason == CLAIMED:
        # The claimer, even if the lead has moved on since (escalated, reassigned).
        claim_id = derived_event_id("claim", entry.assignment_id)
        claimer = next(
            (r.rep_id for r in book.history(person) if r.assignment_id == claim_id), holder
        )
        moved = holder != claimer
        now_with = f"; it is with {_name(config, holder)} ({holder}) now" if moved else ""
        return ClaimRefused(
            409,
            "already_claimed",
            f"Lead {lead_key!r} was already claimed by {_name(config, claimer)}"
            f" ({claimer}) at {entry.closed_at:%Y-%m-%d %H:%M:%S} UTC{now_with}.",
        )
    where = f"it is with {_name(config, holder)} ({holder})" if holder else "nobody holds it"
    return ClaimRefused(
        409,
        "left_pool",
        f"Lead {lead_key!r} no longer waits in the pool ({entry.close_reason}): {where}.",
    )


async def act_on_unclaimed(
    store: RoutingStore,
    config: LeadflowConfig,
    now: datetime,
    options: NotifyOptions | None = None,
    *,
    limit: int = 100,
) -> Unclaimed:
    """Act once on each pool entry nobody claimed by its due time (up to `limit`, the
    longest overdue first): tell the team's manager, and with `fallback: distribute` give
    the lead through the team's distribution (its queue when nobody can take it now)."""
    due = await store.unclaimed(now, limit)
    if not due:
        return Unclaimed([], 0)
    keys = {key for _, key in due}
    await store.lock_leads(keys)
    aliases = await store.aliases(keys)
    persons = {aliases.canonical(key) for key in keys}
    await store.lock_leads(persons - keys)
    # Which teams the entries wait in is only known from their rows: read them first, then
    # lock those teams' routing pools and load the book under the locks.
    waiting = {
        row.assignment_id: row
        for rows in (await store.history(persons)).values()
        for row in rows
        if row.status == "pooled"
    }
    names = frozenset(
        waiting[aid].team
        for aid, _ in due
        if aid in waiting and _team(config, waiting[aid].team) is not None
    )
    pools = pools_of(config)
    locked = Reach(
        frozenset(r for name in names for r in config.team(name).reps),
        names,
        frozenset(pools.of_team(n) for n in names),
    )
    batch = Batch(config, options or NotifyOptions(), now)
    await load_book(store, batch, persons, [], await store.routed_leads(persons), aliases, locked)
    taken = await store.take_unclaimed([aid for aid, _ in due], now)
    distributed = 0
    for aid, key in due:
        if aid in taken and _fall_back(batch, batch.book.person(key), aid, locked):
            distributed += 1
    await save_batch(store, batch)
    return Unclaimed(sorted(taken), distributed)


def _fall_back(batch: Batch, person: str, assignment_id: str, locked: Reach) -> bool:
    """Tell the manager nobody claimed the entry and, per the team's fallback, give the
    lead through the team's distribution; whether a rep got it."""
    config, book, now = batch.config, batch.book, batch.now
    entry = next((r for r in book.history(person) if r.assignment_id == assignment_id), None)
    scored = book.routed_lead(person)
    team = _team(config, entry.team) if entry is not None else None
    if entry is None or entry.closed_at is not None or scored is None or team is None:
        return False  # claimed, given by hand or merged meanwhile: nothing to tell
    pool = team.pool
    wait = waited(now - entry.assigned_at)
    if pool is not None and pool.fallback == "none":
        outcome = "It keeps waiting in the pool for one of the team's reps to claim it."
        book.writes.notifications.extend(
            unclaimed_notifications(config, batch.options, scored, entry, wait, outcome)
        )
        return False
    where = Reach(frozenset(team.reps), frozenset({team.name}), locked.pools)
    previous = previous_reps(book.history(person))
    decision = domain.distribute(
        config,
        scored,
        now,
        book.state(config, now, where, previous),
        team=team.name,
        rule=entry.rule,
        note=f"nobody claimed it from team {team.name!r}'s pool within {wait}",
    )
    book.close(entry, UNCLAIMED, now)
    record(
        batch,
        scored,
        decision,
        where,
        assignment_id=derived_event_id("unclaimed", entry.assignment_id),
        seq=book.next_seq(person),
        kind="unclaimed",
        previous=previous,
        clock_from=entry.assigned_at if pool is not None and pool.sla_starts == "arrival" else None,
    )
    if decision.rep_id is not None:
        outcome = (
            f"The team's {team.distribution.replace('_', ' ')} gave it to "
            f"{_name(config, decision.rep_id)}."
        )
    else:
        outcome = "Nobody in the team can take it now: it waits in the team's queue."
    book.writes.notifications.extend(
        unclaimed_notifications(config, batch.options, scored, entry, wait, outcome)
    )
    return decision.rep_id is not None
