"""Every SQL statement of the SLA monitor."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_sla.tables import sla_timers, sla_windows

STAGE_COLUMNS = {"warning": "warned_at", "breached": "breached_at", "escalated": "escalated_at"}


async def window_exists(session: AsyncSession, assignment_id: str) -> bool:
    """Whether a follow-up window was already opened for this assignment."""
    query = select(sla_windows.c.id).where(sla_windows.c.assignment_id == assignment_id)
    return (await session.execute(query)).first() is not None


async def open_window(
    session: AsyncSession, window: dict[str, Any], timers: Sequence[dict[str, Any]]
) -> None:
    """Open a follow-up window and its ladder of timers."""
    await session.execute(insert(sla_windows).values(status="open", **window))
    await session.execute(
        insert(sla_timers),
        [
            {
                "assignment_id": window["assignment_id"],
                "lead_key": window["lead_key"],
                "policy": window["policy"],
                "rep_id": window["rep_id"],
                "team": window["team"],
                "assigned_at": window["assigned_at"],
                "status": "open",
                **timer,
            }
            for timer in timers
        ],
    )


async def close_windows(
    session: AsyncSession,
    lead_key: str,
    outcome: str,
    now: datetime,
    contacted_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Close the lead's open windows and stop their timers; returns the windows closed."""
    rows = await session.execute(
        select(sla_windows).where(
            sla_windows.c.lead_key == lead_key, sla_windows.c.status == "open"
        )
    )
    closed = [dict(r._mapping) for r in rows]
    if not closed:
        return []
    ids = [w["assignment_id"] for w in closed]
    await session.execute(
        update(sla_windows)
        .where(sla_windows.c.assignment_id.in_(ids), sla_windows.c.status == "open")
        .values(status="closed", outcome=outcome, closed_at=now, contacted_at=contacted_at)
    )
    await session.execute(
        update(sla_timers)
        .where(sla_timers.c.assignment_id.in_(ids), sla_timers.c.status == "open")
        .values(status="stopped", closed_at=now)
    )
    return closed


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Open timers due by `now`, locked so that no other instance fires them too."""
    rows = await session.execute(
        select(sla_timers)
        .where(sla_timers.c.status == "open", sla_timers.c.due_at <= now)
        .order_by(sla_timers.c.due_at, sla_timers.c.id)
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


async def windows_of(session: AsyncSession, assignment_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The windows of these assignments, by assignment id."""
    if not assignment_ids:
        return {}
    rows = await session.execute(
        select(sla_windows).where(sla_windows.c.assignment_id.in_(assignment_ids))
    )
    return {r.assignment_id: dict(r._mapping) for r in rows}


async def mark_stage(session: AsyncSession, assignment_id: str, stage: str, now: datetime) -> None:
    """Record on the window that it reached `stage`."""
    await session.execute(
        update(sla_windows)
        .where(sla_windows.c.assignment_id == assignment_id)
        .values({STAGE_COLUMNS[stage]: now})
    )


async def due_times(session: AsyncSession, until: datetime, limit: int) -> list[datetime]:
    """Due times of open timers up to `until`, soonest first (the scheduler's horizon)."""
    rows = await session.execute(
        select(sla_timers.c.due_at)
        .where(sla_timers.c.status == "open", sla_timers.c.due_at <= until)
        .order_by(sla_timers.c.due_at)
        .limit(limit)
    )
    return list(rows.scalars())


async def count_open_timers(session: AsyncSession) -> int:
    """How many timers are open."""
    query = select(func.count()).where(sla_timers.c.status == "open")
    return int((await session.execute(query)).scalar_one())


async def open_counts(session: AsyncSession, now: datetime) -> list[dict[str, Any]]:
    """Per team and rep: open windows, overdue ones, oldest assignment, next due time."""
    overdue = func.sum(case((sla_windows.c.due_at <= now, 1), else_=0))
    rows = await session.execute(
        select(
            sla_windows.c.team,
            sla_windows.c.rep_id,
            func.count().label("open"),
            overdue.label("overdue"),
            func.min(sla_windows.c.assigned_at).label("oldest_assigned_at"),
            func.min(sla_windows.c.due_at).label("next_due_at"),
        )
        .where(sla_windows.c.status == "open")
        .group_by(sla_windows.c.team, sla_windows.c.rep_id)
        .order_by(sla_windows.c.team, sla_windows.c.rep_id)
    )
    return [dict(r._mapping) for r in rows]


async def open_windows(
    session: AsyncSession,
    now: datetime,
    *,
    team: str | None = None,
    rep_id: str | None = None,
    overdue_only: bool = False,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Open windows, soonest due first, optionally of one team or rep, or only overdue ones."""
    query = select(sla_windows).where(sla_windows.c.status == "open")
    if team is not None:
        query = query.where(sla_windows.c.team == team)
    if rep_id is not None:
        query = query.where(sla_windows.c.rep_id == rep_id)
    if overdue_only:
        query = query.where(sla_windows.c.due_at <= now)
    query = query.order_by(sla_windows.c.due_at, sla_windows.c.id).limit(limit)
    return [dict(r._mapping) for r in await session.execute(query)]


async def lead_history(session: AsyncSession, lead_key: str) -> list[dict[str, Any]]:
    """Every window of a lead with its timers, oldest first."""
    windows = [
        dict(r._mapping)
        for r in await session.execute(
            select(sla_windows)
            .where(sla_windows.c.lead_key == lead_key)
            .order_by(sla_windows.c.assigned_at, sla_windows.c.id)
        )
    ]
    timers = await session.execute(
        select(sla_timers)
        .where(sla_timers.c.lead_key == lead_key)
        .order_by(sla_timers.c.due_at, sla_timers.c.id)
    )
    by_assignment: dict[str, list[dict[str, Any]]] = {}
    for t in timers:
        by_assignment.setdefault(t.assignment_id, []).append(
            {"stage": t.stage, "due_at": t.due_at, "status": t.status, "closed_at": t.closed_at}
        )
    return [{**w, "timers": by_assignment.get(w["assignment_id"], [])} for w in windows]
