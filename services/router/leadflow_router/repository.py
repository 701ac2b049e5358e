"""The router's per-lead reads: a lead's history and decisions, queued leads, conversion stats.

What a routing batch reads and writes in bulk is in `book_repository.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import aliases
from leadflow.events import LeadScored
from leadflow_router.book_repository import CONSUMER
from leadflow_router.tables import assignments, pooled_leads, routed_leads, routing_decisions


async def person(session: AsyncSession, lead_key: str) -> str:
    """The key the person known by `lead_key` is known by now, in the router's aliases."""
    found = await aliases.resolve(session, CONSUMER, [lead_key])
    return found[lead_key]


async def history(session: AsyncSession, lead_key: str) -> list[dict[str, Any]]:
    """Every assignment and queue entry of a lead, oldest first."""
    rows = await session.execute(
        select(assignments).where(assignments.c.lead_key == lead_key).order_by(assignments.c.seq)
    )
    return [dict(r._mapping) for r in rows]


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


@dataclass(frozen=True, slots=True)
class PoolLead:
    """A lead waiting in a team's pool: its pool entry and the scored lead it waits with."""

    lead_key: str
    assignment_id: str
    rule: str
    pooled_at: datetime
    due_at: datetime
    alerted_at: datetime | None
    scored: LeadScored | None


async def pool_leads(session: AsyncSession, team: str) -> list[PoolLead]:
    """The leads waiting in a team's pool (open pool entries), the longest waiting first."""
    a, p, r = assignments.c, pooled_leads.c, routed_leads.c
    query = (
        select(a.lead_key, a.assignment_id, a.rule, p.pooled_at, p.due_at, p.alerted_at, r.scored)
        .join(pooled_leads, p.assignment_id == a.assignment_id)
        .outerjoin(routed_leads, r.lead_key == a.lead_key)
        .where(a.team == team, a.status == "pooled", a.closed_at.is_(None))
        .order_by(p.pooled_at, a.id)
    )
    return [
        PoolLead(
            lead_key=str(row.lead_key),
            assignment_id=str(row.assignment_id),
            rule=str(row.rule),
            pooled_at=row.pooled_at,
            due_at=row.due_at,
            alerted_at=row.alerted_at,
            scored=LeadScored.model_validate(row.scored) if row.scored is not None else None,
        )
        for row in await session.execute(query)
    ]
