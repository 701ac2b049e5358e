"""Every SQL statement of the SLA monitor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_sla.tables import sla_timers


async def open_timer(session: AsyncSession, values: dict[str, Any]) -> None:
    """Start a follow-up timer."""
    await session.execute(insert(sla_timers).values(status="open", **values))


async def stop_timers(session: AsyncSession, lead_key: str, now: datetime) -> list[dict[str, Any]]:
    """Stop the lead's open timers; returns the ones that were open."""
    rows = await session.execute(
        select(sla_timers).where(sla_timers.c.lead_key == lead_key, sla_timers.c.status == "open")
    )
    stopped = [dict(r._mapping) for r in rows]
    if stopped:
        await session.execute(
            update(sla_timers)
            .where(sla_timers.c.id.in_([t["id"] for t in stopped]))
            .values(status="stopped", closed_at=now)
        )
    return stopped


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Open timers due by `now`, locked so that no other instance fires them too."""
    rows = await session.execute(
        select(sla_timers)
        .where(sla_timers.c.status == "open", sla_timers.c.due_at <= now)
        .order_by(sla_timers.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [dict(r._mapping) for r in rows]


async def mark_fired(session: AsyncSession, timer_id: int, now: datetime) -> bool:
    """Close a due timer as fired; False if someone else closed it first."""
    result = await session.execute(
        update(sla_timers)
        .where(sla_timers.c.id == timer_id, sla_timers.c.status == "open")
        .values(status="fired", closed_at=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def count_open(session: AsyncSession) -> int:
    """How many timers are open."""
    query = select(func.count()).where(sla_timers.c.status == "open")
    return int((await session.execute(query)).scalar_one())


async def open_by_team(session: AsyncSession, team: str | None) -> list[dict[str, Any]]:
    """Open timers (optionally of one team), soonest due first."""
    query = select(sla_timers).where(sla_timers.c.status == "open").order_by(sla_timers.c.due_at)
    if team is not None:
        query = query.where(sla_timers.c.team == team)
    return [dict(r._mapping) for r in await session.execute(query)]
