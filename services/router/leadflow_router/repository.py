"""The router's per-lead reads: a lead's history and decisions, queued leads, conversion stats.

What a routing batch reads and writes in bulk is in `book_repository.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import aliases
from leadflow_router.book_repository import CONSUMER
from leadflow_router.tables import assignments, routing_decisions


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
