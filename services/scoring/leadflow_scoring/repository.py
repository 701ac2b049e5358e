"""Every SQL statement of the scoring service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_scoring.domain import Touch
from leadflow_scoring.tables import lead_profiles, lead_touches


async def add_touch(session: AsyncSession, lead_key: str, event_id: str, touch: Touch) -> None:
    """Record one touch of a person."""
    await session.execute(
        insert(lead_touches).values(
            lead_key=lead_key,
            event_id=event_id,
            source=touch.source,
            activity=touch.activity,
            occurred_at=touch.occurred_at,
            detail=touch.detail,
        )
    )


async def touches(session: AsyncSession, lead_key: str) -> list[Touch]:
    """A person's touches, oldest first."""
    rows = await session.execute(
        select(lead_touches)
        .where(lead_touches.c.lead_key == lead_key)
        .order_by(lead_touches.c.occurred_at, lead_touches.c.id)
    )
    return [Touch(r.activity, r.source, r.occurred_at, r.detail) for r in rows]


async def profile(session: AsyncSession, lead_key: str) -> dict[str, Any] | None:
    """A person's profile row (locked on PostgreSQL until the transaction ends)."""
    row = (
        await session.execute(
            select(lead_profiles).where(lead_profiles.c.lead_key == lead_key).with_for_update()
        )
    ).first()
    return dict(row._mapping) if row is not None else None


async def save_profile(
    session: AsyncSession, values: dict[str, Any], *, exists: bool, now: datetime
) -> None:
    """Insert or update a person's profile."""
    values = {**values, "updated_at": now}
    if exists:
        await session.execute(
            update(lead_profiles)
            .where(lead_profiles.c.lead_key == values["lead_key"])
            .values(values)
        )
    else:
        await session.execute(insert(lead_profiles).values(values))
