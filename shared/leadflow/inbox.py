"""The inbox: which events a consumer has already applied (same transaction as its state)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, Insert, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.db.tables import processed_events


async def first_delivery(
    session: AsyncSession, consumer: str, event_id: str, now: datetime
) -> bool:
    """Record the event as processed by `consumer`; False when it already was (a redelivery)."""
    values = {"consumer": consumer, "event_id": event_id, "processed_at": now}
    dialect = session.bind.dialect.name if session.bind is not None else ""
    stmt: Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(processed_events).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(processed_events).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - other databases are not supported
        stmt = insert(processed_events).values(values)
    result = await session.execute(stmt)
    assert isinstance(result, CursorResult)
    return result.rowcount == 1
