"""The transactional outbox: events written with the state change, relayed after commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow import leases
from leadflow.bus import Publisher
from leadflow.db.engine import session_factory
from leadflow.db.tables import outbox
from leadflow.events import Envelope
from leadflow.faults import describe, is_transient
from leadflow.leases import new_holder
from leadflow.metrics import ConsumerMetrics
from leadflow.settings import Settings
from leadflow.topics import Lane, topic_for

log = logging.getLogger(__name__)

RELAY_BATCH = 500
KEEP_SENT = timedelta(hours=1)


async def enqueue(session: AsyncSession, producer: str, event: Envelope, now: datetime) -> None:
    """Add `event` to the outbox in the caller's transaction."""
    await enqueue_many(session, producer, [event], now)


async def enqueue_many(
    session: AsyncSession,
    producer: str,
    events: Sequence[Envelope],
    now: datetime,
    lane: Lane = "live",
) -> None:
    """Add `events` to the outbox in the caller's transaction, in order, in one statement,
    bound for `lane`'s topics."""
    if not events:
        return
    rows = [
        {
            "producer": producer,
            "topic": topic_for(event.type, lane),
            "key": event.subject,
            "event_id": event.id,
            "payload": event.to_bytes(),
            "created_at": now,
        }
        for event in events
    ]
    await session.execute(insert(outbox), rows)


class OutboxRelay:
    """Publishes a producer's outbox rows in order, then marks them sent.

    A crash after publishing and before marking replays the rows: downstream inboxes
    drop the duplicates by event id. Instances of a service take turns through a lease
    (`outbox:<producer>`) held for one batch at a time, so two of them never publish the
    same rows or overtake each other's batches (which could reorder one person's events).
    No database lock is held while publishing.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        publisher: Publisher,
        settings: Settings,
        producer: str,
        metrics: ConsumerMetrics | None = None,
    ) -> None:
        self._sessions = session_factory(engine)
        self._lease = f"outbox:{producer}"
        self._holder = new_holder()
        self._publisher = publisher
        self._settings = settings
        self._producer = producer
        self._metrics = metrics
        self._wake = asyncio.Event()
        self.healthy = True

    def wake(self) -> None:
        """Relay now (called after a transaction that wrote outbox rows committed)."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Relay up to one batch of pending rows; returns how many were published."""
        if not await self._anything_pending():
            return 0  # an idle poll reads, and never writes the lease
        async with self._sessions() as session, session.begin():
            if not await leases.acquire(session, self._lease, self._holder):
                return 0  # another instance is relaying a batch
            rows = await self._pending_rows(session)
            if not rows:
                await leases.release(session, self._lease, self._holder)
                return 0
        try:
            async with leases.kept(self._sessions, self._lease, self._holder):
                await self._publish(rows)
        except Exception:
            await self._release()  # let another instance try
            raise
        async with self._sessions() as session, session.begin():
            await self._mark_sent(session, [r.id for r in rows])
            await leases.release(session, self._lease, self._holder)
        return len(rows)

    async def _anything_pending(self) -> bool:
        async with self._sessions() as session:
            query = (
                select(outbox.c.id)
                .where(outbox.c.producer == self._producer, outbox.c.sent_at.is_(None))
                .limit(1)
            )
            return (await session.execute(query)).first() is not None

    async def _release(self) -> None:
        async with self._sessions() as session, session.begin():
            await leases.release(session, self._lease, self._holder)

    async def _pending_rows(self, session: AsyncSession) -> list[Row[tuple[int, str, str, bytes]]]:
        query = (
            select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload)
            .where(outbox.c.producer == self._producer, outbox.c.sent_at.is_(None))
            .order_by(outbox.c.id)
            .limit(RELAY_BATCH)
        )
        return list((await session.execute(query)).all())  # type: ignore[arg-type]

    async def _publish(self, rows: list[Row[tuple[int, str, str, bytes]]]) -> None:
        await self._publisher.publish_many(
            [(self._settings.topic(r.topic), r.key, r.payload) for r in rows]
        )
        if self._metrics is not None:
            for r in rows:
                self._metrics.produced.labels(r.topic).inc()

    async def _mark_sent(self, session: AsyncSession, ids: list[int]) -> None:
        await session.execute(
            update(outbox).where(outbox.c.id.in_(ids)).values(sent_at=datetime.now(UTC))
        )

    async def pending(self) -> int:
        """Rows of this producer not yet relayed."""
        async with self._sessions() as session:
            query = select(func.count()).where(
                outbox.c.producer == self._producer, outbox.c.sent_at.is_(None)
            )
            return int((await session.execute(query)).scalar_one())

    async def prune(self, now: datetime) -> None:
        """Forget rows relayed long ago."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(outbox).where(
                    outbox.c.producer == self._producer, outbox.c.sent_at < now - KEEP_SENT
                )
            )

    async def run(self) -> None:
        """Relay whenever woken (or every `outbox_poll_s`) until cancelled."""
        pruned_at = datetime.now(UTC)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.outbox_poll_s)
            self._wake.clear()
            try:
                while await self.relay_once() == RELAY_BATCH:
                    pass
                self.healthy = True
                if self._metrics is not None:
                    self._metrics.outbox_pending.set(await self.pending())
                now = datetime.now(UTC)
                if now - pruned_at > KEEP_SENT / 4:
                    await self.prune(now)
                    pruned_at = now
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # An outage is reported once, when it starts; a bug with its traceback.
                if not is_transient(exc):
                    log.exception("outbox relay failed; retrying")
                elif self.healthy:
                    log.warning("outbox relay waiting", extra={"reason": describe(exc)})
                self.healthy = False
                if self._metrics is not None:
                    # Keep the backlog gauge moving while the broker is away.
                    with contextlib.suppress(Exception):
                        self._metrics.outbox_pending.set(await self.pending())
                await asyncio.sleep(self._settings.outbox_poll_s)

    async def stop(self) -> None:
        """Relay what is pending, bounded (called at shutdown, once `run` is cancelled)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.relay_once(), self._settings.stop_timeout_s)
