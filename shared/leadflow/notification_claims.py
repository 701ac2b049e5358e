"""Who sends which notification: rows claimed one by one, until a time on the database's clock.

A dispatcher claims due rows (`claimed_by`, `claimed_until`), renews its claims while it
works, and clears a claim when it records the row's outcome. Another instance takes a row
only once its claim has expired by the database's clock. Before each send the dispatcher
makes sure its claim outlasts the send: from when the database last granted or renewed it
(timed on the dispatcher's monotonic clock from before the statement, less a margin), or
else by taking the row again here (`take`) — so one that lost a claim (paused past its
expiry, say) sends nothing more. On PostgreSQL claims skip rows another transaction is
claiming (`FOR UPDATE SKIP LOCKED`); on SQLite the write lock serializes them. Every
statement of the dispatcher about claims is here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Dialect, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.db.tables import notifications
from leadflow.delivery import Notification
from leadflow.leases import database_now, database_time_after

n = notifications.c


@dataclass(frozen=True)
class Claimed:
    """A notification this dispatcher has claimed, as it was when claimed."""

    id: int
    attempts: int
    next_attempt_at: datetime
    notification: Notification
    # The trace of the lead it is about, where its send is a span (leadflow.tracing).
    traceparent: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What one attempt left behind: sent, failed for good, or due again later."""

    attempts: int
    sent_at: datetime | None = None
    failed_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str | None = None


def _dialect(session: AsyncSession) -> Dialect:
    if session.bind is None:
        raise RuntimeError("claims need a session bound to an engine.")
    return session.bind.dialect


def _unfinished() -> ColumnElement[bool]:
    return and_(n.sent_at.is_(None), n.failed_at.is_(None))


def _unclaimed(dialect: Dialect) -> ColumnElement[bool]:
    return or_(n.claimed_until.is_(None), n.claimed_until < database_now(dialect))


async def due(
    session: AsyncSession,
    producer: str,
    now: datetime,
    limit: int,
    skip_targets: Collection[str] = (),
) -> list[tuple[int, str]]:
    """(id, target) of due, unclaimed rows, oldest first, leaving out `skip_targets`."""
    query = (
        select(n.id, n.target)
        .where(
            n.producer == producer,
            _unfinished(),
            n.next_attempt_at <= now,
            _unclaimed(_dialect(session)),
        )
        .order_by(n.next_attempt_at, n.id)
        .limit(limit)
    )
    if skip_targets:
        query = query.where(n.target.not_in(list(skip_targets)))
    return [(row.id, row.target) for row in await session.execute(query)]


def pick(candidates: Iterable[tuple[int, str]], limit: int, per_target: int) -> list[int]:
    """Up to `limit` ids in order, at most `per_target` of one target (pure)."""
    taken: dict[str, int] = {}
    chosen: list[int] = []
    for row_id, target in candidates:
        if len(chosen) >= limit:
            break
        if taken.get(target, 0) < per_target:
            taken[target] = taken.get(target, 0) + 1
            chosen.append(row_id)
    return chosen


async def claim(
    session: AsyncSession, ids: list[int], holder: str, now: datetime, ttl: timedelta
) -> list[Claimed]:
    """Claim those of `ids` still due and unclaimed for `ttl`; returns them, oldest first."""
    dialect = _dialect(session)
    free = (
        select(n.id)
        .where(n.id.in_(ids), _unfinished(), n.next_attempt_at <= now, _unclaimed(dialect))
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(notifications)
        .where(n.id.in_(free.scalar_subquery()))
        .values(claimed_by=holder, claimed_until=database_time_after(dialect, ttl))
        .returning(
            n.id,
            n.attempts,
            n.next_attempt_at,
            n.channel,
            n.target,
            n.subject,
            n.body,
            n.dedupe_key,
            n.payload,
            n.traceparent,
        )
    )
    claimed = [
        Claimed(
            id=row.id,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            notification=stored_notification(row),
            traceparent=row.traceparent,
        )
        for row in result
    ]
    return sorted(claimed, key=lambda c: (c.next_attempt_at, c.id))


async def take(session: AsyncSession, row_id: int, holder: str, ttl: timedelta) -> bool:
    """Renew `holder`'s claim on one unfinished row for `ttl`; False if it is no longer theirs."""
    # Only a claim writes `claimed_by`, so a row still naming `holder` was not taken by
    # anyone else since — even if the claim lapsed a moment ago.
    result = await session.execute(
        update(notifications)
        .where(n.id == row_id, n.claimed_by == holder, _unfinished())
        .values(claimed_until=database_time_after(_dialect(session), ttl))
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def renew(
    session: AsyncSession, ids: Collection[int], holder: str, ttl: timedelta
) -> list[int]:
    """Renew `holder`'s claims on `ids` for `ttl`; returns the ids still theirs."""
    result = await session.execute(
        update(notifications)
        .where(n.id.in_(list(ids)), n.claimed_by == holder)
        .values(claimed_until=database_time_after(_dialect(session), ttl))
        .returning(n.id)
    )
    return list(result.scalars())


async def finish(session: AsyncSession, row_id: int, holder: str, outcome: Outcome) -> bool:
    """Record an attempt's outcome and clear the claim; False if the row was not `holder`'s."""
    values: dict[str, object] = {
        "attempts": outcome.attempts,
        "last_error": outcome.last_error,
        "claimed_by": None,
        "claimed_until": None,
    }
    if outcome.sent_at is not None:
        values["sent_at"] = outcome.sent_at
    if outcome.failed_at is not None:
        values["failed_at"] = outcome.failed_at
    if outcome.next_attempt_at is not None:
        values["next_attempt_at"] = outcome.next_attempt_at
    result = await session.execute(
        update(notifications).where(n.id == row_id, n.claimed_by == holder).values(values)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def finish_all(
    session: AsyncSession, holder: str, outcomes: list[tuple[int, Outcome]]
) -> list[bool]:
    """`finish` for each (row id, outcome), in the caller's one transaction."""
    return [await finish(session, row_id, holder, outcome) for row_id, outcome in outcomes]


async def release(session: AsyncSession, producer: str, holder: str) -> int:
    """Give up every claim of `holder` now (nothing of theirs is in flight); returns how many."""
    result = await session.execute(
        update(notifications)
        .where(n.producer == producer, n.claimed_by == holder, _unfinished())
        .values(claimed_by=None, claimed_until=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def stored_notification(row: Any) -> Notification:
    """The notification a `notifications` row holds."""
    return Notification(
        channel=row.channel,
        target=row.target,
        subject=row.subject,
        body=row.body,
        dedupe_key=row.dedupe_key,
        payload=row.payload,
    )
