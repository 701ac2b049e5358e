"""Every SQL statement of the router's routing state: assignments, turns, decisions, leads."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.events import LeadScored
from leadflow_router.availability import RepLoad
from leadflow_router.domain import Decision
from leadflow_router.tables import (
    assignments,
    round_robin_pointers,
    routed_leads,
    routing_decisions,
)

# Any constant works; it only has to be the same in every router instance.
_ROUTING_LOCK = 0x4C46_5254


async def lock_routing(session: AsyncSession) -> None:
    """Serialize routing decisions across router instances until the transaction ends.

    Turns, caps and loads are shared by every partition, so two instances must not decide
    at once. PostgreSQL: a transaction-scoped advisory lock (one lock, so no deadlock);
    SQLite: writers already hold the database lock from BEGIN IMMEDIATE.
    """
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ROUTING_LOCK})


async def assignment_count(session: AsyncSession, lead_key: str) -> int:
    """How many times this lead has been assigned or queued."""
    query = select(func.count()).where(assignments.c.lead_key == lead_key)
    return int((await session.execute(query)).scalar_one())


async def current_assignment(session: AsyncSession, lead_key: str) -> dict[str, Any] | None:
    """The lead's latest assignment or queue entry."""
    query = (
        select(assignments)
        .where(assignments.c.lead_key == lead_key)
        .order_by(assignments.c.seq.desc())
        .limit(1)
    )
    row = (await session.execute(query)).first()
    return dict(row._mapping) if row is not None else None


async def history(session: AsyncSession, lead_key: str) -> list[dict[str, Any]]:
    """Every assignment and queue entry of a lead, oldest first."""
    rows = await session.execute(
        select(assignments).where(assignments.c.lead_key == lead_key).order_by(assignments.c.seq)
    )
    return [dict(r._mapping) for r in rows]


async def last_turn(session: AsyncSession, team: str) -> str | None:
    """The rep who had the team's last turn."""
    query = select(round_robin_pointers.c.last_rep_id).where(round_robin_pointers.c.team == team)
    return (await session.execute(query)).scalar_one_or_none()


async def advance_turn(session: AsyncSession, team: str, rep_id: str) -> int:
    """Record that `rep_id` had the team's latest turn; returns that turn's number."""
    result = await session.execute(
        update(round_robin_pointers)
        .where(round_robin_pointers.c.team == team)
        .values(last_rep_id=rep_id, turns=round_robin_pointers.c.turns + 1)
        .returning(round_robin_pointers.c.turns)
    )
    turn = result.scalar_one_or_none()
    if turn is not None:
        return int(turn)
    await session.execute(
        insert(round_robin_pointers).values(team=team, last_rep_id=rep_id, turns=1)
    )
    return 1


async def loads(session: AsyncSession, day_starts: Mapping[str, datetime]) -> dict[str, RepLoad]:
    """Each rep's open leads and leads assigned since the start of their local day."""
    reps = list(day_starts)
    if not reps:
        return {}
    open_rows = await session.execute(
        select(assignments.c.rep_id, func.count())
        .where(
            assignments.c.rep_id.in_(reps),
            assignments.c.status == "assigned",
            assignments.c.closed_at.is_(None),
        )
        .group_by(assignments.c.rep_id)
    )
    open_counts = {str(rep): int(n) for rep, n in open_rows.all()}
    by_start: dict[datetime, list[str]] = defaultdict(list)
    for rep, start in day_starts.items():
        by_start[start].append(rep)
    today: dict[str, int] = {}
    for start, group in by_start.items():
        today.update(await _assigned_since(session, group, start))
    return {r: RepLoad(today=today.get(r, 0), open=open_counts.get(r, 0)) for r in reps}


async def _assigned_since(
    session: AsyncSession, reps: Iterable[str], since: datetime
) -> dict[str, int]:
    rows = await session.execute(
        select(assignments.c.rep_id, func.count())
        .where(
            assignments.c.rep_id.in_(list(reps)),
            assignments.c.status == "assigned",
            assignments.c.assigned_at >= since,
        )
        .group_by(assignments.c.rep_id)
    )
    return {str(rep): int(n) for rep, n in rows.all()}


async def recent_counts(
    session: AsyncSession, reps: Iterable[str], since: datetime
) -> dict[str, int]:
    """Leads assigned to each rep since `since` (a weighted team's balance window)."""
    return await _assigned_since(session, reps, since)


async def conversion_stats(
    session: AsyncSession, reps: Iterable[str], since: datetime
) -> dict[str, tuple[int, int]]:
    """Per rep, leads assigned since `since` and how many of those converted."""
    rows = await session.execute(
        select(
            assignments.c.rep_id,
            func.count(),
            func.count(assignments.c.converted_at),
        )
        .where(
            assignments.c.rep_id.in_(list(reps)),
            assignments.c.status == "assigned",
            assignments.c.assigned_at >= since,
        )
        .group_by(assignments.c.rep_id)
    )
    return {str(rep): (int(n), int(converted)) for rep, n, converted in rows.all()}


async def record(
    session: AsyncSession,
    *,
    lead_key: str,
    assignment_id: str,
    seq: int,
    decision: Decision,
    kind: str,
    turn: int | None,
    config_version: str,
    now: datetime,
) -> None:
    """Store the assignment (or queue entry) and the decision that produced it."""
    await session.execute(
        insert(assignments).values(
            assignment_id=assignment_id,
            lead_key=lead_key,
            seq=seq,
            rep_id=decision.rep_id,
            team=decision.team,
            rule=decision.rule,
            status=decision.outcome,
            assigned_at=now,
            turn=turn,
        )
    )
    await session.execute(
        insert(routing_decisions).values(
            lead_key=lead_key,
            assignment_id=assignment_id,
            decided_at=now,
            config_version=config_version,
            outcome=decision.outcome,
            rule=decision.rule,
            team=decision.team,
            rep_id=decision.rep_id,
            reason=decision.reason,
            candidates=decision.candidates,
            skipped=decision.skipped,
            kind=kind,
            method=decision.method,
            account=decision.account,
            trace=decision.trace,
            details=decision.details,
        )
    )


async def close(session: AsyncSession, assignment_id: str, reason: str, now: datetime) -> None:
    """Mark an assignment as no longer open (reassigned, or an outcome was reported)."""
    await session.execute(
        update(assignments)
        .where(assignments.c.assignment_id == assignment_id, assignments.c.closed_at.is_(None))
        .values(closed_at=now, close_reason=reason)
    )


async def record_outcome(
    session: AsyncSession, lead_key: str, outcome: str, converted: bool, now: datetime
) -> None:
    """Close the lead's open assignment on a final outcome; credit a conversion to its rep."""
    current = await current_assignment(session, lead_key)
    if current is None or current["rep_id"] is None:
        return
    values: dict[str, Any] = {}
    if current["closed_at"] is None:
        values.update(closed_at=now, close_reason=outcome)
    if converted and current["converted_at"] is None:
        values["converted_at"] = now
    if values:
        await session.execute(
            update(assignments).where(assignments.c.id == current["id"]).values(values)
        )


async def save_lead(session: AsyncSession, scored: LeadScored, now: datetime) -> None:
    """Keep the scored lead a first routing decided on (for reassignments and queue retries)."""
    await session.execute(
        insert(routed_leads).values(
            lead_key=scored.lead_key, scored=scored.model_dump(mode="json"), routed_at=now
        )
    )


async def routed_lead(session: AsyncSession, lead_key: str) -> LeadScored | None:
    """The scored lead as it was routed."""
    query = select(routed_leads.c.scored).where(routed_leads.c.lead_key == lead_key)
    raw = (await session.execute(query)).scalar_one_or_none()
    return LeadScored.model_validate(raw) if raw is not None else None


async def queued_leads(session: AsyncSession, after_id: int, limit: int) -> list[dict[str, Any]]:
    """Open queue entries (a queue entry is closed when the lead leaves the queue), by id."""
    query = (
        select(assignments)
        .where(
            assignments.c.status == "queued",
            assignments.c.closed_at.is_(None),
            assignments.c.id > after_id,
        )
        .order_by(assignments.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in await session.execute(query)]


async def decisions(session: AsyncSession, lead_key: str) -> list[dict[str, Any]]:
    """Every routing decision taken for a lead, oldest first."""
    rows = await session.execute(
        select(routing_decisions)
        .where(routing_decisions.c.lead_key == lead_key)
        .order_by(routing_decisions.c.decided_at, routing_decisions.c.id)
    )
    return [dict(r._mapping) for r in rows]
