"""The transactional outbox: events written with the state change, published after commit.

A consumer's batch writes its events to the outbox in the batch's transaction; right after
the commit the same process publishes them (`OutboxRelay.publish_committed`) and the relay
marks them sent in the background, so a hop costs one publish, not a poll. The relay itself
only sweeps what that fast path left behind: rows of a process that died between commit and
publish (older than `outbox_grace_s`), rows written outside a consumer (API calls, timers:
their writers `wake` it), and everything pending after a failed publish. Until such a
backlog is swept, the fast path steps aside, so one person's events never overtake each
other; a row published twice (the fast path and a sweep racing) is dropped by the
receiving inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow import leases, tracing
from leadflow.bus import Message, Publisher
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
# Where a session keeps the outbox rows its transaction wrote (see `written`).
_WRITTEN = "leadflow.outbox.written"


@dataclass(frozen=True, slots=True)
class Written:
    """Outbox rows written by one statement of a transaction, to publish (in order) once
    that transaction committed: their ids, and each row's topic, key, payload and trace
    context header."""

    ids: list[int]
    messages: list[Message]


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
    bound for `lane`'s topics. The session remembers them for `written`."""
    if not events:
        return
    bound = [(topic_for(event.type, lane), event) for event in events]
    payloads = [event.to_bytes() for event in events]
    rows = [
        {
            "producer": producer,
            "topic": topic,
            "key": event.subject,
            "event_id": event.id,
            "payload": payload,
            "created_at": now,
        }
        for (topic, event), payload in zip(bound, payloads, strict=True)
    ]
    messages: list[Message] = [
        tracing.message(topic, event.subject, payload, None)
        for (topic, event), payload in zip(bound, payloads, strict=True)
    ]
    if tracing.enabled():
        # Each event continues the trace of the lead it is about (leadflow.tracing).
        for i, ((topic, event), payload) in enumerate(zip(bound, payloads, strict=True)):
            parent = rows[i]["traceparent"] = tracing.traceparent_for(event.subject)
            messages[i] = tracing.message(topic, event.subject, payload, parent)
    # The ids only serve to mark the rows sent; RETURNING keeps the insert one statement
    # (asking for them in parameter order would make SQLite insert row by row).
    ids = (await session.scalars(insert(outbox).returning(outbox.c.id), rows)).all()
    session.info.setdefault(_WRITTEN, []).append(Written(list(ids), messages))


def written(session: AsyncSession) -> list[Written]:
    """The outbox rows written through `session`, in order (and forgets them): read after
    its transaction committed, they are the rows to publish."""
    rows: list[Written] = session.info.pop(_WRITTEN, [])
    return rows


class OutboxRelay:
    """Publishes a producer's outbox rows in order, then marks them sent.

    Two paths (see the module's docstring): `publish_committed`, called by a consumer right
    after its transaction committed, and the sweep, which publishes what is pending in id
    order. A crash after publishing and before marking replays the rows: downstream inboxes
    drop the duplicates by event id. Instances of a service sweep in turns through a lease
    (`outbox:<producer>`) held for one batch at a time, so two of them never overtake each
    other's batches (which could reorder one person's events). No database lock is held
    while publishing.
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
        self._work = asyncio.Event()
        self._sweep_asked = True  # the first round sweeps whatever an earlier run left
        self._next_sweep = 0.0  # monotonic time of the next periodic sweep
        self._published: list[int] = []  # ids published by the fast path, to mark sent
        # While rows may be pending from before (at start, after a failed publish), the fast
        # path steps aside: everything goes through the sweep, in order, until it is empty.
        self._backlog = True
        self._deferrals = 0  # rows handed to the sweep by the fast path, so far
        self.healthy = True

    @property
    def backlog(self) -> bool:
        """True while rows from before may be pending and the fast path steps aside."""
        return self._backlog

    def wake(self) -> None:
        """Sweep now (called after a transaction that wrote outbox rows committed, unless
        its writer publishes them itself with `publish_committed`)."""
        self._sweep_asked = True
        self._work.set()

    async def publish_committed(self, rows: Sequence[Written]) -> None:
        """Publish rows a transaction of this process just committed (the fast path).

        Never raises: if the broker refuses them, they stay pending and the sweep takes
        over (and every later row goes through it too, until the backlog is gone)."""
        if not rows:
            return
        if self._backlog:
            self._deferrals += 1
            self.wake()
            return
        try:
            await self._publisher.publish_many(
                # Each message as written, on the prefixed topic.
                [(self._settings.topic(m[0]), *m[1:]) for r in rows for m in r.messages]
            )
        except Exception as exc:
            self._backlog = True
            self._deferrals += 1
            self.wake()
            if is_transient(exc):
                log.warning("publishing after commit failed", extra={"reason": describe(exc)})
            else:
                log.exception("publishing after commit failed; the relay takes over")
            return
        self._count_produced(m[0] for r in rows for m in r.messages)
        self._published.extend(id_ for r in rows for id_ in r.ids)
        self._work.set()

    async def mark_published(self) -> int:
        """Mark the rows the fast path published as sent; returns how many."""
        ids, self._published = self._published, []
        if ids:
            try:
                async with self._sessions() as session, session.begin():
                    await self._mark_sent(session, ids)
            except BaseException:
                self._published[:0] = ids  # marked with the next round
                raise
        return len(ids)

    async def relay_once(self, grace: timedelta = timedelta(0)) -> int:
        """Sweep up to one batch of pending rows (those older than `grace`); returns how
        many were published."""
        return await self._relay(grace) or 0

    async def _relay(self, grace: timedelta) -> int | None:
        """One batch of the sweep: how many rows were published, None when another
        instance holds the turn."""
        if not await self._anything_pending(grace):
            return 0  # an idle poll reads, and never writes the lease
        async with self._sessions() as session, session.begin():
            if not await leases.acquire(session, self._lease, self._holder):
                return None  # another instance is relaying a batch
            rows = await self._pending_rows(session, grace)
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

    def _unsent(self, grace: timedelta) -> list[ColumnElement[bool]]:
        where = [outbox.c.producer == self._producer, outbox.c.sent_at.is_(None)]
        if grace:
            where.append(outbox.c.created_at < datetime.now(UTC) - grace)
        return where

    async def _anything_pending(self, grace: timedelta) -> bool:
        async with self._sessions() as session:
            query = select(outbox.c.id).where(*self._unsent(grace)).limit(1)
            return (await session.execute(query)).first() is not None

    async def _release(self) -> None:
        async with self._sessions() as session, session.begin():
            await leases.release(session, self._lease, self._holder)

    async def _pending_rows(
        self, session: AsyncSession, grace: timedelta
    ) -> list[Row[tuple[int, str, str, bytes, str | None]]]:
        query = (
            select(
                outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload, outbox.c.traceparent
            )
            .where(*self._unsent(grace))
            .order_by(outbox.c.id)
            .limit(RELAY_BATCH)
        )
        return list((await session.execute(query)).all())  # type: ignore[arg-type]

    async def _publish(self, rows: list[Row[tuple[int, str, str, bytes, str | None]]]) -> None:
        await self._publisher.publish_many(
            [
                tracing.message(self._settings.topic(r.topic), r.key, r.payload, r.traceparent)
                for r in rows
            ]
        )
        self._count_produced(r.topic for r in rows)

    def _count_produced(self, topics: Iterable[str]) -> None:
        if self._metrics is not None:
            for topic in topics:
                self._metrics.produced.labels(topic).inc()

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
        """Until cancelled: mark what the fast path published, sweep when asked, and sweep
        leftovers older than `outbox_grace_s` every `outbox_poll_s`."""
        grace = timedelta(seconds=self._settings.outbox_grace_s)
        pruned_at = datetime.now(UTC)
        while True:
            timeout = self._next_sweep - time.monotonic()
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._work.wait()
            self._work.clear()
            try:
                await self._round(grace)
                now = datetime.now(UTC)
                if now - pruned_at > KEEP_SENT / 4:
                    await self.prune(now)
                    pruned_at = now
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed(exc)

    async def _round(self, grace: timedelta) -> None:
        await self.mark_published()
        sweep_all = self._sweep_asked or self._backlog
        if not sweep_all and time.monotonic() < self._next_sweep:
            return
        self._sweep_asked = False
        self._next_sweep = time.monotonic() + self._settings.outbox_poll_s
        deferrals = self._deferrals
        emptied = await self._sweep(timedelta(0) if sweep_all else grace)
        if sweep_all and emptied and deferrals == self._deferrals:
            # Everything committed before this sweep began is out, and nothing was handed
            # over since: the fast path can no longer overtake an older row.
            self._backlog = False
        self.healthy = True
        if self._metrics is not None:
            self._metrics.outbox_pending.set(await self.pending())

    async def _sweep(self, grace: timedelta) -> bool:
        """Publish pending rows batch by batch; True once none was left, False when another
        instance holds the turn."""
        while True:
            published = await self._relay(grace)
            if published is None:
                return False
            if published < RELAY_BATCH:
                return True

    async def _failed(self, exc: Exception) -> None:
        # An outage is reported once, when it starts; a bug with its traceback.
        if not is_transient(exc):
            log.exception("outbox relay failed; retrying")
        elif self.healthy:
            log.warning("outbox relay waiting", extra={"reason": describe(exc)})
        self.healthy = False
        self._backlog = True
        self._sweep_asked = True  # sweep everything once it works again
        if self._metrics is not None:
            # Keep the backlog gauge moving while the broker is away.
            with contextlib.suppress(Exception):
                self._metrics.outbox_pending.set(await self.pending())
        await asyncio.sleep(self._settings.outbox_poll_s)

    async def stop(self) -> None:
        """Mark what was published and relay what is pending, bounded (called at shutdown,
        once `run` is cancelled)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.mark_published(), self._settings.stop_timeout_s)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.relay_once(), self._settings.stop_timeout_s)
