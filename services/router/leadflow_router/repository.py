"""Every SQL statement of the router."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_router.domain import Decision
from leadflow_router.tables import assignments, round_robin_pointers, routing_decisions


async def assignment_count(session: AsyncSession, lead_key: str) -> int:
    """How many times this lead has been assigned or queued."""
    query = select(func.count()).where(assignments.c.lead_key == lead_key)
    return int((await session.execute(query)).scalar_one())


async def last_turn(session: AsyncSession, team: str) -> str | None:
    """The rep who had the team's last round-robin turn (row locked on PostgreSQL)."""
    query = (
        select(round_robin_pointers.c.last_rep_id)
        .where(round_robin_pointers.c.team == team)
        .with_for_update()
    )
    return (await session.execute(query)).scalar_one_or_none()


async def advance_turn(session: AsyncSession, team: str, rep_id: str) -> None:
    """Record that `rep_id` had the team's latest turn."""
    result = await session.execute(
        update(round_robin_pointers)
        .where(round_robin_pointers.c.team == team)
        .values(last_rep_id=rep_id, turns=round_robin_pointers.c.turns + 1)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        await session.execute(
            insert(round_robin_pointers).values(team=team, last_rep_id=rep_id, turns=1)
        )


async def record(
    session: AsyncSession,
    *,
    lead_key: str,
    assignment_id: str,
    seq: int,
    decision: Decision,
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
        )
    )
    await session.execute(
        insert(routing_decisions).values(
            lead_key=lead_key,
            assignment_id=assignment_id,
            decided_at=now,
            config_version=config_version,
            **{k: v for k, v in asdict(decision).items() if k != "by_rotation"},
        )
    )


async def decisions(session: AsyncSession, lead_key: str) -> list[dict[str, Any]]:
    """Every routing decision taken for a lead, oldest first."""
    rows = await session.execute(
        select(routing_decisions)
        .where(routing_decisions.c.lead_key == lead_key)
        .order_by(routing_decisions.c.decided_at, routing_decisions.c.id)
    )
    return [dict(r._mapping) for r in rows]
