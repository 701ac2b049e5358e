"""The inbox: which events a consumer has already applied (same transaction as its state)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.db.statements import insert_new
from leadflow.db.tables import processed_events


async def first_delivery(
    session: AsyncSession, consumer: str, event_id: str, now: datetime
) -> bool:
    """Record the event as processed by `consumer`; False when it already was (a redelivery)."""
    return event_id in await first_deliveries(session, consumer, [event_id], now)


async def first_deliveries(
    session: AsyncSession, consumer: str, event_ids: Sequence[str], now: datetime
) -> set[str]:
    """Record the events as processed by `consumer`, in one statement; returns the ids that
    had not been (the others are redeliveries)."""
    if not event_ids:
        return set()
    rows = [
        {"consumer": consumer, "event_id": event_id, "processed_at": now}
        for event_id in dict.fromkeys(event_ids)
    ]
    stmt = insert_new(session, processed_events).returning(processed_events.c.event_id)
    result = await session.execute(stmt, rows)
    return set(result.scalars())
