"""Retention: rows nobody needs any more are deleted in bounded batches, in the background.

Every consuming service runs one `retention` job (`LEADFLOW_RETENTION_*`): the inbox of
processed event ids older than the redeliveries it guards against, notifications sent or
given up long ago, the sent `lead.erased` events (the last rows naming an erased person's
keys), and whatever rules the service adds (scoring: old touches; the SLA monitor: expired
console sign-ins). Each rule deletes at most `retention_batch` rows per transaction, so
pruning a large backlog never holds a long lock; a rule with 0 days keeps its rows forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leadflow.db.tables import erasures, notifications, outbox, processed_events
from leadflow.faults import describe, is_transient
from leadflow.processing import utcnow
from leadflow.settings import Settings

log = logging.getLogger(__name__)

# Deletes up to `limit` rows older than the cutoff; returns how many it deleted.
Prune = Callable[[AsyncSession, datetime, int], Awaitable[int]]


@dataclass(frozen=True)
class Rule:
    """One kind of row to prune once it is older than `days` (0: never)."""

    name: str
    days: float
    prune: Prune


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def prune_processed_events(session: AsyncSession, before: datetime, limit: int) -> int:
    """Forget inbox rows of events processed before `before`."""
    c = processed_events.c
    oldest = select(c.consumer, c.event_id).where(c.processed_at < before).limit(limit)
    result = await session.execute(
        delete(processed_events).where(tuple_(c.consumer, c.event_id).in_(oldest))
    )
    return _count(result)


async def prune_notifications(session: AsyncSession, before: datetime, limit: int) -> int:
    """Delete notifications sent, or given up, before `before`."""
    c = notifications.c
    oldest = (
        select(c.id)
        .where(or_(c.sent_at < before, c.failed_at < before))
        .order_by(c.id)
        .limit(limit)
    )
    return _count(await session.execute(delete(notifications).where(c.id.in_(oldest))))


async def prune_erasure_events(session: AsyncSession, _before: datetime, limit: int) -> int:
    """Delete `lead.erased` events once relayed, whatever their age: they name the erased
    person's keys, and every consumer has them on the topic."""
    c = outbox.c
    relayed = (
        select(c.id)
        .where(c.sent_at.is_not(None), c.event_id.in_(select(erasures.c.erasure_id)))
        .limit(limit)
    )
    return _count(await session.execute(delete(outbox).where(c.id.in_(relayed))))


def shared_rules(settings: Settings) -> list[Rule]:
    """The rules of the tables every service shares."""
    return [
        Rule("processed_events", settings.retention_processed_events_days, prune_processed_events),
        Rule("notifications", settings.retention_notifications_days, prune_notifications),
        # Not a matter of days: as soon as they are out.
        Rule("erasure_events", -1.0, prune_erasure_events),
    ]


async def prune(
    sessions: async_sessionmaker[AsyncSession],
    rules: Sequence[Rule],
    now: datetime,
    batch: int,
) -> dict[str, int]:
    """Apply every rule until it finds nothing more to delete; rows deleted per rule."""
    deleted: dict[str, int] = {}
    for rule in rules:
        if rule.days == 0:
            continue
        before = now - timedelta(days=max(rule.days, 0.0))
        total = 0
        while True:
            async with sessions() as session, session.begin():
                count = await rule.prune(session, before, batch)
            total += count
            if count < batch:
                break
        deleted[rule.name] = total
    return deleted


async def run(
    sessions: async_sessionmaker[AsyncSession],
    rules: Sequence[Rule],
    settings: Settings,
    on_round: Callable[[], None] = lambda: None,
) -> None:
    """Prune every `retention_interval_s` until cancelled; an outage is waited out."""
    while True:
        try:
            deleted = await prune(sessions, rules, utcnow(), settings.retention_batch)
            if any(deleted.values()):
                log.info("retention pruned rows", extra={"deleted": deleted})
            on_round()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("database unavailable; pruning later", extra={"reason": describe(exc)})
        await asyncio.sleep(settings.retention_interval_s)
