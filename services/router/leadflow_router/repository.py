"""The router's per-lead reads: a lead's history and decisions, queued leads, conversion stats.

What a routing batch reads and writes in bulk is in `book_repository.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import aliases
from leadflow.events import LeadScored
from leadflow_router.book import Assignment
from leadflow_router.book_repository import CONSUMER
from leadflow_router.tables import assignments, pooled_leads, routed_leads, routing_decisions


async def person(session: AsyncSession, lead_key: str) -> str:
    """The key the person known by `lead_key` is known by now, in the router's aliases."""
    found = await aliases.resolve(session, CONSUMER, [lead_key])
    return found[lead_key]


async def history(session: AsyncSession, lead_key: str) -> list[Assignment]:
    """Every assignment and queue entry of a lead, oldest first."""
    rows = await session.execute(
        select(assignments).where(assignments.c.lead_key == lead_key).order_by(assignments.c.seq)
    )
    return [Assignment(**r._mapping) for r in rows]


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


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """An open queue entry: its `assignments` row id (the page cursor) and its lead."""

    id: int
    lead_key: str


async def queued_leads(session: AsyncSession, after_id: int, limit: int) -> list[QueueEntry]:
    """Open queue entries (a queue entry is closed when the lead leaves the queue), by id."""
    query = (
        select(assignments.c.id, assignments.c.lead_key)
        .where(
            assignments.c.status == "queued",
            assignments.c.closed_at.is_(None),
            assignments.c.id > after_id,
        )
        .order_by(assignments.c.id)
        .limit(limit)
    )
    return [QueueEntry(int(i), str(key)) for i, key in await session.execute(query)]


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A row of `routing_decisions`: a decision as recorded, with what it weighed.

    Rows written before a column existed read back with it empty (None); the `or` defaults
    below are what such a row means.
    """

    id: int
    lead_key: str
    assignment_id: str
    decided_at: datetime
    outcome: str
    rule: str
    team: str
    rep_id: str | None
    reason: str
    candidates: list[str]
    skipped: dict[str, str]
    config_version: str
    # `route`, or how else the lead moved (a reassignment, a claim).
    kind: str
    method: str | None
    account: str | None
    trace: list[str]
    details: dict[str, Any]


async def decisions(session: AsyncSession, lead_key: str) -> list[DecisionRecord]:
    """Every routing decision taken for a lead, oldest first."""
    rows = await session.execute(
        select(routing_decisions)
        .where(routing_decisions.c.lead_key == lead_key)
        .order_by(routing_decisions.c.decided_at, routing_decisions.c.id)
    )
    return [_decision(row) for row in rows]


def _decision(row: Row[Any]) -> DecisionRecord:
    return DecisionRecord(
        id=int(row.id),
        lead_key=str(row.lead_key),
        assignment_id=str(row.assignment_id),
        decided_at=row.decided_at,
        outcome=str(row.outcome),
        rule=str(row.rule),
        team=str(row.team),
        rep_id=row.rep_id,
        reason=str(row.reason),
        candidates=list(row.candidates),
        skipped=dict(row.skipped or {}),
        config_version=str(row.config_version),
        kind=row.kind or "route",
        method=row.method,
        account=row.account,
        trace=list(row.trace or []),
        details=dict(row.details or {}),
    )


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
