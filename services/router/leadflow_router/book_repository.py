"""Every SQL statement of a routing batch: pool locks, bulk loads of its book, bulk writes.

Each function is one statement whatever the number of leads, reps or teams, so a batch
costs the same few statements for one event and for hundreds. `SqlRoutingStore` is the
routing store (`store.RoutingStore`) the consumers run the use case on.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import aliases
from leadflow.aliases import AliasBook
from leadflow.db.tables import UtcDateTime
from leadflow.events import LeadScored
from leadflow.notifications import queue_many
from leadflow.outbox import enqueue_many
from leadflow_router import roster_repository
from leadflow_router.book import Assignment, PoolEntry, Turns, Writes
from leadflow_router.domain import Decision
from leadflow_router.notify import PRODUCER
from leadflow_router.pools import lock_key
from leadflow_router.store import RunTimeRoster, Tallies
from leadflow_router.tables import (
    assignments,
    pooled_leads,
    round_robin_pointers,
    routed_leads,
    routing_decisions,
)

# The router's name in the alias table.
CONSUMER = "router"

# Advisory locks taken one after the other in the array's order (unnest keeps it), in
# one round trip: every router sorts its keys, so two batches never wait on each other
# in a circle.
_LOCK_POOLS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")


async def lock_pools(session: AsyncSession, pools: Collection[str]) -> None:
    """Hold the routing pools until the transaction ends (PostgreSQL; SQLite writers
    already hold the database lock from BEGIN IMMEDIATE)."""
    if not pools or session.bind is None or session.bind.dialect.name != "postgresql":
        return
    await session.execute(_LOCK_POOLS, {"keys": sorted(lock_key(pool) for pool in pools)})


async def routed_leads_of(
    session: AsyncSession, lead_keys: Collection[str]
) -> dict[str, LeadScored]:
    """The scored leads as they were first routed, by lead key."""
    if not lead_keys:
        return {}
    query = select(routed_leads.c.lead_key, routed_leads.c.scored).where(
        routed_leads.c.lead_key.in_(list(lead_keys))
    )
    return {str(key): LeadScored.model_validate(raw) for key, raw in await session.execute(query)}


async def history_of(
    session: AsyncSession, lead_keys: Collection[str]
) -> dict[str, list[Assignment]]:
    """Every assignment and queue entry of these leads, oldest first."""
    if not lead_keys:
        return {}
    c = assignments.c
    query = select(
        c.id,
        c.assignment_id,
        c.lead_key,
        c.seq,
        c.rep_id,
        c.team,
        c.rule,
        c.status,
        c.assigned_at,
        c.turn,
        c.closed_at,
        c.close_reason,
        c.converted_at,
        c.contacted_at,
        c.domain,
        c.batch_position,
    ).where(c.lead_key.in_(list(lead_keys)))
    history: dict[str, list[Assignment]] = {}
    for row in await session.execute(query.order_by(c.lead_key, c.seq)):
        history.setdefault(row.lead_key, []).append(Assignment(**row._mapping))
    return history


async def tallies(
    session: AsyncSession, reps: Collection[str], sinces: Iterable[datetime]
) -> Tallies:
    """Each rep's open leads, and per instant their leads assigned (and converted) since.

    Every rep and instant is in the answer (0 when there is nothing to count).
    """
    ordered = sorted(set(sinces))
    open_leads = dict.fromkeys(reps, 0)
    counts: dict[datetime, dict[str, list[int]]] = {s: {r: [0, 0] for r in reps} for s in ordered}
    if not reps:
        return open_leads, counts
    c = assignments.c
    columns = [func.count(case((c.closed_at.is_(None), 1)))]
    for since in ordered:
        columns.append(func.count(case((c.assigned_at >= since, 1))))
        columns.append(
            func.count(case((and_(c.assigned_at >= since, c.converted_at.is_not(None)), 1)))
        )
    recent = or_(c.closed_at.is_(None), c.assigned_at >= ordered[0]) if ordered else None
    query = (
        select(c.rep_id, *columns)
        .where(c.rep_id.in_(list(reps)), c.status == "assigned")
        .where(recent if recent is not None else c.closed_at.is_(None))
        .group_by(c.rep_id)
    )
    for rep, open_now, *numbers in await session.execute(query):
        open_leads[rep] = int(open_now)
        for i, since in enumerate(ordered):
            counts[since][rep] = [int(numbers[2 * i]), int(numbers[2 * i + 1])]
    return open_leads, counts


async def owners_of(
    session: AsyncSession, domains: Collection[str]
) -> dict[str, list[tuple[str, str]]]:
    """Per company domain, its open assignments as (assignment id, rep), oldest first
    (every domain asked for is in the answer)."""
    found: dict[str, list[tuple[str, str]]] = {d: [] for d in domains}
    if not domains:
        return found
    c = assignments.c
    query = (
        select(c.domain, c.assignment_id, c.rep_id)
        .where(c.domain.in_(sorted(domains)), c.status == "assigned", c.closed_at.is_(None))
        .where(c.rep_id.is_not(None))
        .order_by(c.domain, c.assigned_at, c.id)
    )
    for domain, assignment_id, rep_id in await session.execute(query):
        found[str(domain)].append((str(assignment_id), str(rep_id)))
    return found


async def uncontacted_of(session: AsyncSession, rep_id: str) -> list[str]:
    """The leads the rep holds (open assignments) and has not contacted, oldest first."""
    c = assignments.c
    query = (
        select(c.lead_key)
        .where(c.rep_id == rep_id, c.status == "assigned", c.closed_at.is_(None))
        .where(c.contacted_at.is_(None))
        .order_by(c.assigned_at, c.id)
    )
    return [str(key) for key in (await session.execute(query)).scalars()]


async def turns_of(session: AsyncSession, teams: Collection[str]) -> dict[str, Turns]:
    """The round-robin pointers of these teams (a team that never had a turn has none)."""
    if not teams:
        return {}
    p = round_robin_pointers.c
    query = select(p.team, p.last_rep_id, p.turns).where(p.team.in_(list(teams)))
    return {str(team): Turns(last, int(n)) for team, last, n in await session.execute(query)}


# Only what is still unset is set: an outcome recorded meanwhile by another transaction
# (outcomes take no routing lock) keeps its time and reason.
_CHANGE = (
    update(assignments)
    .where(assignments.c.id == bindparam("row_id"))
    .values(
        closed_at=func.coalesce(
            assignments.c.closed_at, bindparam("new_closed_at", type_=UtcDateTime())
        ),
        close_reason=case(
            (
                assignments.c.closed_at.is_(None),
                func.coalesce(bindparam("new_close_reason"), assignments.c.close_reason),
            ),
            else_=assignments.c.close_reason,
        ),
        converted_at=func.coalesce(
            assignments.c.converted_at, bindparam("new_converted_at", type_=UtcDateTime())
        ),
        contacted_at=func.coalesce(
            assignments.c.contacted_at, bindparam("new_contacted_at", type_=UtcDateTime())
        ),
    )
)


# A merge moves an assignment to the survivor, after the survivor's own (see `RoutingBook`).
_MOVE = (
    update(assignments)
    .where(assignments.c.id == bindparam("row_id"))
    .values(lead_key=bindparam("new_lead_key"), seq=bindparam("new_seq"))
)
_REKEY = (
    update(routing_decisions)
    .where(routing_decisions.c.lead_key == bindparam("old_lead_key"))
    .values(lead_key=bindparam("new_lead_key"))
)


async def lock_leads(session: AsyncSession, lead_keys: Collection[str]) -> None:
    """Hold these people until the transaction ends (PostgreSQL; SQLite writers already
    hold the database lock from BEGIN IMMEDIATE)."""
    if not lead_keys or session.bind is None or session.bind.dialect.name != "postgresql":
        return
    keys = sorted(lock_key(f"lead:{key}") for key in lead_keys)
    await session.execute(_LOCK_POOLS, {"keys": keys})


async def save(session: AsyncSession, writes: Writes, now: datetime) -> None:
    """Write back what a batch changed: a statement per table, whatever the batch's size."""
    await _save_merges(session, writes)
    routed = [*writes.leads, *(writes.rerouted[key] for key in sorted(writes.rerouted))]
    if routed:
        rows = [
            {"lead_key": s.lead_key, "scored": s.model_dump(mode="json"), "routed_at": now}
            for s in routed
        ]
        await session.execute(insert(routed_leads), rows)
    if writes.changed:
        # In id order, so two transactions changing the same rows take their locks alike.
        changes = [
            {
                "row_id": row_id,
                "new_closed_at": row.closed_at,
                "new_close_reason": row.close_reason,
                "new_converted_at": row.converted_at,
                "new_contacted_at": row.contacted_at,
            }
            for row_id, row in sorted(writes.changed.items())
        ]
        await session.execute(_CHANGE, changes)
    await _save_turns(session, writes.turns)
    if writes.assignments:
        await session.execute(insert(assignments), [_assignment(a) for a in writes.assignments])
    if writes.pooled:
        await session.execute(insert(pooled_leads), [_pooled(e) for e in writes.pooled])
    if writes.decided:
        await session.execute(
            insert(routing_decisions),
            [_decision(d.assignment, d.decision, d.kind, d.config_version) for d in writes.decided],
        )
    await enqueue_many(session, PRODUCER, writes.events, now)
    await queue_many(session, PRODUCER, writes.notifications, now)


async def _save_merges(session: AsyncSession, writes: Writes) -> None:
    """The aliases, and the assignments, decisions and routed leads merges moved."""
    if writes.aliases:
        await aliases.save_rows(session, CONSUMER, writes.aliases)
    if writes.moved:
        moves = [
            {"row_id": row_id, "new_lead_key": row.lead_key, "new_seq": row.seq}
            for row_id, row in sorted(writes.moved.items())
        ]
        await session.execute(_MOVE, moves)
    if writes.rekeyed:
        rekeyed = [
            {"old_lead_key": k, "new_lead_key": v} for k, v in sorted(writes.rekeyed.items())
        ]
        await session.execute(_REKEY, rekeyed)
    gone = writes.unrouted | set(writes.rerouted)
    if gone:
        await session.execute(delete(routed_leads).where(routed_leads.c.lead_key.in_(sorted(gone))))


async def _save_turns(session: AsyncSession, turns: dict[str, Turns]) -> None:
    stored = [
        {"row_team": team, "new_last": t.last_rep_id, "new_turns": t.turns}
        for team, t in sorted(turns.items())
        if t.stored
    ]
    if stored:
        p = round_robin_pointers.c
        stmt = (
            update(round_robin_pointers)
            .where(p.team == bindparam("row_team"))
            .values(last_rep_id=bindparam("new_last"), turns=bindparam("new_turns"))
        )
        await session.execute(stmt, stored)
    new = [
        {"team": team, "last_rep_id": t.last_rep_id, "turns": t.turns}
        for team, t in sorted(turns.items())
        if not t.stored
    ]
    if new:
        await session.execute(insert(round_robin_pointers), new)


class SqlRoutingStore:
    """The routing store on the database, in the caller's transaction (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def routed_leads(self, lead_keys: Collection[str]) -> dict[str, LeadScored]:
        """The scored leads as they were first routed, by lead key."""
        return await routed_leads_of(self.session, lead_keys)

    async def roster(self, rep_ids: Collection[str], now: datetime) -> RunTimeRoster:
        """Stored overrides of these reps, and their absences not ended or cancelled."""
        overrides = await roster_repository.overrides(self.session, rep_ids)
        absent = await roster_repository.absences(self.session, rep_ids, now)
        absences = {
            rep_id: [(a.starts_at, a.ends_at, a.note) for a in rows]
            for rep_id, rows in absent.items()
        }
        return RunTimeRoster(overrides, absences)

    async def lock(self, pools: Collection[str]) -> None:
        """Advisory locks on the pools, to the end of the transaction (PostgreSQL)."""
        await lock_pools(self.session, pools)

    async def lock_leads(self, lead_keys: Collection[str]) -> None:
        """Advisory locks on the people, to the end of the transaction (PostgreSQL)."""
        await lock_leads(self.session, lead_keys)

    async def aliases(self, lead_keys: Collection[str]) -> AliasBook:
        """The router's aliases of every person these keys name."""
        return await aliases.load(self.session, CONSUMER, lead_keys)

    async def history(self, lead_keys: Collection[str]) -> dict[str, list[Assignment]]:
        """Every assignment and queue entry of these leads, oldest first."""
        return await history_of(self.session, lead_keys)

    async def tallies(self, reps: Collection[str], sinces: Iterable[datetime]) -> Tallies:
        """Each rep's open leads, and per instant their leads assigned (and converted) since."""
        return await tallies(self.session, reps, sinces)

    async def turns(self, teams: Collection[str]) -> dict[str, Turns]:
        """The round-robin pointers of these teams."""
        return await turns_of(self.session, teams)

    async def uncontacted(self, rep_id: str) -> list[str]:
        """The leads the rep holds and has not contacted, oldest first."""
        return await uncontacted_of(self.session, rep_id)

    async def owners(self, domains: Collection[str]) -> dict[str, list[tuple[str, str]]]:
        """Per company domain, its open assignments as (assignment id, rep), oldest first."""
        return await owners_of(self.session, domains)

    async def unclaimed(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """Pool entries overdue and not acted on, as (assignment id, lead key)."""
        return await unclaimed_of(self.session, now, limit)

    async def take_unclaimed(self, assignment_ids: Collection[str], now: datetime) -> set[str]:
        """Mark overdue pool entries as acted on; those this transaction marked."""
        return await take_unclaimed(self.session, assignment_ids, now)

    async def claim(self, assignment_id: str, at: datetime) -> bool:
        """Close a pool entry as claimed if it is still open; whether this one did."""
        return await claim_entry(self.session, assignment_id, at)

    async def positions_taken(self, now: datetime) -> int:
        """The first batch position left free at `now` (one index look-up)."""
        return await positions_taken(self.session, now)

    async def save(self, writes: Writes, now: datetime) -> None:
        """Write back what a batch changed, a statement per table."""
        await save(self.session, writes, now)


async def positions_taken(session: AsyncSession, now: datetime) -> int:
    """One more than the largest batch position of the assignments made at `now` (0 if
    none): a batch deciding at the same instant as one before numbers on after it."""
    c = assignments.c
    query = select(func.max(c.batch_position)).where(c.assigned_at == now)
    taken = (await session.execute(query)).scalar()
    return 0 if taken is None else int(taken) + 1


async def unclaimed_of(session: AsyncSession, now: datetime, limit: int) -> list[tuple[str, str]]:
    """Pool entries nobody claimed by their due time and nobody acted on yet, as
    (assignment id, lead key), the longest overdue first (an entry waits while its
    assignments row is open)."""
    p, c = pooled_leads.c, assignments.c
    query = (
        select(p.assignment_id, c.lead_key)
        .join(assignments, c.assignment_id == p.assignment_id)
        .where(p.due_at <= now, p.alerted_at.is_(None), c.closed_at.is_(None))
        .order_by(p.due_at, p.assignment_id)
        .limit(limit)
    )
    return [(str(aid), str(key)) for aid, key in await session.execute(query)]


async def take_unclaimed(
    session: AsyncSession, assignment_ids: Collection[str], now: datetime
) -> set[str]:
    """Mark these overdue pool entries as acted on; returns those this transaction marked
    (an entry another router marked first is not among them: it acts on it, not we)."""
    if not assignment_ids:
        return set()
    p = pooled_leads.c
    stmt = (
        update(pooled_leads)
        .where(p.assignment_id.in_(sorted(assignment_ids)), p.alerted_at.is_(None))
        .values(alerted_at=now)
        .returning(p.assignment_id)
    )
    return {str(aid) for aid in (await session.execute(stmt)).scalars()}


async def claim_entry(session: AsyncSession, assignment_id: str, at: datetime) -> bool:
    """Close a pool entry as claimed if it is still open; whether this transaction did (the
    one conditional UPDATE two claimers race on: the second finds it closed)."""
    c = assignments.c
    stmt = (
        update(assignments)
        .where(c.assignment_id == assignment_id, c.status == "pooled", c.closed_at.is_(None))
        .values(closed_at=at, close_reason="claimed")
    )
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0) == 1)


def _pooled(entry: PoolEntry) -> dict[str, Any]:
    return {
        "assignment_id": entry.assignment_id,
        "team": entry.team,
        "pooled_at": entry.pooled_at,
        "due_at": entry.due_at,
        "alerted_at": None,
    }


def _assignment(row: Assignment) -> dict[str, Any]:
    return {
        "assignment_id": row.assignment_id,
        "lead_key": row.lead_key,
        "seq": row.seq,
        "rep_id": row.rep_id,
        "team": row.team,
        "rule": row.rule,
        "status": row.status,
        "assigned_at": row.assigned_at,
        "turn": row.turn,
        "closed_at": row.closed_at,
        "close_reason": row.close_reason,
        "converted_at": row.converted_at,
        "contacted_at": row.contacted_at,
        "domain": row.domain,
        "batch_position": row.batch_position,
    }


def _decision(
    row: Assignment, decision: Decision, kind: str, config_version: str
) -> dict[str, Any]:
    return {
        "lead_key": row.lead_key,
        "assignment_id": row.assignment_id,
        "decided_at": row.assigned_at,
        "config_version": config_version,
        "outcome": decision.outcome,
        "rule": decision.rule,
        "team": decision.team,
        "rep_id": decision.rep_id,
        "reason": decision.reason,
        "candidates": decision.candidates,
        "skipped": decision.skipped,
        "kind": kind,
        "method": decision.method,
        "account": decision.account,
        "trace": decision.trace,
        "details": decision.details,
    }
