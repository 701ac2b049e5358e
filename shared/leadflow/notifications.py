"""Notifications to people (email, webhook, Slack-compatible webhook), durable and sent once.

A service queues a notification in the transaction that decided it (like the outbox),
under a dedupe key such as `sla:<assignment>:breached:email:<address>`: a replayed event
cannot queue it twice. A dispatcher then sends due rows, retries failures with
exponential backoff, and gives up after `LEADFLOW_NOTIFY_MAX_ATTEMPTS`, counting both.

Rows are claimed one by one (`notification_claims`), so several instances share the work
and none sends a row another holds. Sends to different targets run at once (up to
`concurrency`), each target's in order: a receiver that answers slowly holds up only its
own notifications. A crash between a send and its bookkeeping resends once; emails carry
a Message-ID and webhooks a `webhook-id` derived from the dedupe key, so receivers can
drop the copy. A row keeps the trace context of the lead it is about, and each attempt to
send it is a span in that trace (leadflow.tracing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from opentelemetry.trace import SpanKind
from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow import leases, tracing
from leadflow import notification_claims as claims
from leadflow.coalesce import Coalescer
from leadflow.db.engine import session_factory
from leadflow.db.statements import insert_new
from leadflow.db.tables import notifications
from leadflow.delivery import (
    Channel,
    EmailSender,
    Notification,
    Sender,
    WebhookSender,
    header_text,
)
from leadflow.metrics import Labelled
from leadflow.notification_claims import Claimed, Outcome, stored_notification
from leadflow.processing import utcnow
from leadflow.settings import Settings

log = logging.getLogger(__name__)

DISPATCH_BATCH = 50  # rows one dispatcher holds at most
PER_TARGET = 10  # rows of one target claimed at a time; the rest wait for any instance
CONCURRENCY = 8  # targets one dispatcher sends to at once
RELEASE_TIMEOUT_S = 5.0
CLAIM_MARGIN_S = 1.0


async def queue(
    session: AsyncSession, producer: str, notification: Notification, now: datetime
) -> bool:
    """Queue a notification in the caller's transaction; False if its dedupe key was queued."""
    stmt = insert_new(session, notifications).values(_row(producer, notification, now))
    result = await session.execute(stmt)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def queue_many(
    session: AsyncSession, producer: str, notes: Sequence[Notification], now: datetime
) -> None:
    """Queue notifications in the caller's transaction, in order, in one statement (those
    whose dedupe key was queued before are skipped)."""
    if notes:
        rows = [_row(producer, note, now) for note in notes]
        await session.execute(insert_new(session, notifications), rows)


def _row(producer: str, notification: Notification, now: datetime) -> dict[str, Any]:
    traceparent = tracing.traceparent_for(_lead_of(notification)) if tracing.enabled() else None
    return {
        "producer": producer,
        "channel": notification.channel,
        "target": notification.target,
        "dedupe_key": notification.dedupe_key,
        "subject": header_text(notification.subject)[:300],
        # PostgreSQL text cannot hold NUL; nothing a person reads needs one.
        "body": notification.body.replace("\x00", ""),
        "payload": dict(notification.payload),
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now,
        "traceparent": traceparent,
    }


def _lead_of(notification: Notification) -> str | None:
    """The key of the lead a notification is about: its payload's `lead_key` (an SLA
    alert), or its assignment's (a rep told of a lead)."""
    payload = notification.payload
    assignment = payload.get("assignment")
    lead_key = payload.get("lead_key") or (
        assignment.get("lead_key") if isinstance(assignment, dict) else None
    )
    return lead_key if isinstance(lead_key, str) else None


@dataclass(frozen=True)
class NotificationMetrics:
    """Sends, retries and final failures, by channel."""

    sent: Labelled
    retried: Labelled
    failed: Labelled


_SENT = Counter(
    "leadflow_notifications_sent_total",
    "Notifications delivered, by service and channel.",
    ["service", "channel"],
)
_RETRIED = Counter(
    "leadflow_notifications_retried_total",
    "Failed sends scheduled for another try, by service and channel.",
    ["service", "channel"],
)
_FAILED = Counter(
    "leadflow_notifications_failed_total",
    "Notifications given up after every attempt, by service and channel.",
    ["service", "channel"],
)


@cache
def notification_metrics(service: str) -> NotificationMetrics:
    """The notification metrics of `service`, with its `service` label bound."""
    return NotificationMetrics(
        sent=Labelled(_SENT, service),
        retried=Labelled(_RETRIED, service),
        failed=Labelled(_FAILED, service),
    )


def claim_ttl_for(timeout_s: float) -> timedelta:
    """How long a claim lasts unrenewed: several sends' time limit, and at least 30 s."""
    return timedelta(seconds=max(30.0, 3 * timeout_s))


class NotificationDispatcher:
    """Sends a producer's due notifications, targets concurrently; retries with backoff.

    `run()` is the long-running loop (it raises on a database error, for a supervisor
    to restart it); `dispatch_once()` claims and sends one round and returns.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        producer: str,
        senders: Mapping[str, Sender],
        *,
        concurrency: int = CONCURRENCY,
        claim_ttl: timedelta | None = None,
    ) -> None:
        self._ttl = claim_ttl or claim_ttl_for(settings.notify_timeout_s)
        if self._ttl.total_seconds() <= settings.notify_timeout_s:
            raise ValueError(
                f"The notification claim lasts {self._ttl.total_seconds():g} s, not longer than "
                f"one send may take (LEADFLOW_NOTIFY_TIMEOUT_S={settings.notify_timeout_s:g}); "
                "give it more time than that."
            )
        self._sessions = session_factory(engine)
        self._holder = leases.new_holder()
        self._settings = settings
        self._producer = producer
        self._senders = senders
        self._metrics = notification_metrics(producer)
        self._slots = asyncio.Semaphore(concurrency)
        # Slack between what this process knows of a claim and the database's expiry.
        self._margin_s = min(CLAIM_MARGIN_S, self._ttl.total_seconds() / 10)
        # Rows claimed here and not yet recorded -> the loop time their claim surely lasts.
        self._held: dict[int, float] = {}
        self._busy: set[str] = set()  # targets with claimed rows here
        self._recorder: Coalescer[tuple[int, Outcome], bool] = Coalescer(self._record)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due notifications now."""
        self._wake.set()

    async def dispatch_once(self, now: datetime | None = None) -> int:
        """Claim due notifications once and send them; returns how many were delivered."""
        groups = await self._claim(now or utcnow())
        if not groups:
            return 0
        try:
            async with self._renewing():
                return sum(await _all([self._send_group(rows, now) for rows in groups]))
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._release(), RELEASE_TIMEOUT_S)
            raise

    async def run(self) -> None:
        """Send due notifications whenever woken (or every `notify_poll_s`) until cancelled.

        A database error ends the run (raised, after its sends are cancelled and its claims
        given up where the database still answers), so a supervisor restarts it.
        """
        await self._release()  # what an earlier run of this dispatcher left claimed
        sending: set[asyncio.Task[int]] = set()
        try:
            async with self._renewing():
                while True:
                    for task in [t for t in sending if t.done()]:
                        sending.discard(task)
                        task.result()  # a send group's database error ends the run
                    for rows in await self._claim(utcnow()):
                        sending.add(asyncio.create_task(self._send_group(rows, None)))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._settings.notify_poll_s)
                    self._wake.clear()
        finally:
            for task in sending:
                task.cancel()
            await asyncio.gather(*sending, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._release(), RELEASE_TIMEOUT_S)

    async def _claim(self, now: datetime) -> list[list[Claimed]]:
        """Claim due rows of targets not busy here; grouped by target, oldest first."""
        room = DISPATCH_BATCH - len(self._held)
        if room <= 0:
            return []
        async with self._sessions() as session:
            candidates = await claims.due(session, self._producer, now, 4 * room, self._busy)
        chosen = claims.pick(candidates, room, PER_TARGET)
        if not chosen:
            return []  # an idle poll reads, and never writes
        asked_at = asyncio.get_running_loop().time()
        async with self._sessions() as session, session.begin():
            rows = await claims.claim(session, chosen, self._holder, now, self._ttl)
        groups: dict[str, list[Claimed]] = {}
        for row in rows:
            groups.setdefault(row.notification.target, []).append(row)
        self._confirmed([row.id for row in rows], asked_at)
        self._busy.update(groups)
        return list(groups.values())

    async def _send_group(self, rows: list[Claimed], now: datetime | None) -> int:
        """Send one target's rows in order, once a slot is free; returns how many arrived.

        A row's outcome is recorded while the next row is sent (the records of all groups
        share transactions), and before the one after: a database that stopped answering
        stops the group after at most two unrecorded sends.
        """
        delivered = 0
        recording: asyncio.Future[bool] | None = None
        try:
            async with self._slots:
                for row in rows:
                    if not await self._still_ours(row):
                        log.warning(
                            "notification claim lost before sending; another dispatcher has it",
                            extra={"notification": row.id, "channel": row.notification.channel},
                        )
                        continue
                    outcome = await self._attempt(row, now or utcnow())
                    delivered += outcome.sent_at is not None
                    if recording is not None:
                        await recording
                    recording = self._recorder.submit((row.id, outcome))
                if recording is not None:
                    await recording
        finally:
            self._busy.discard(rows[0].notification.target)
            for row in rows:
                self._held.pop(row.id, None)
            self._wake.set()  # the target is free again
        return delivered

    def _confirmed(self, ids: list[int], asked_at: float) -> None:
        """Note that the database granted claims on `ids` for a TTL from after `asked_at`."""
        # The database dated the claim when it ran the statement, after `asked_at` on this
        # process's monotonic clock: the claim lasts at least a TTL from then.
        until = asked_at + self._ttl.total_seconds() - self._margin_s
        for row_id in ids:
            self._held[row_id] = until

    async def _still_ours(self, row: Claimed) -> bool:
        """Whether the claim on `row` will outlast one send, taking it again if unsure."""
        now = asyncio.get_running_loop().time()
        if now + self._settings.notify_timeout_s < self._held.get(row.id, now):
            return True
        async with self._sessions() as session, session.begin():
            if not await claims.take(session, row.id, self._holder, self._ttl):
                return False
        self._confirmed([row.id], now)
        return True

    async def _attempt(self, row: Claimed, now: datetime) -> Outcome:
        channel = row.notification.channel
        sender = self._senders.get(channel)
        attempts = row.attempts + 1
        try:
            if sender is None:
                raise RuntimeError(f"no sender is configured for channel {channel!r}")
            with tracing.continued(
                f"{self._producer} notify {channel}",
                row.traceparent,
                kind=SpanKind.PRODUCER,
                attributes={"leadflow.notification.channel": channel, "leadflow.attempt": attempts},
            ):
                await asyncio.wait_for(
                    sender.send(row.notification), self._settings.notify_timeout_s
                )
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
            if attempts >= self._settings.notify_max_attempts:
                self._metrics.failed.labels(channel).inc()
                log.warning(
                    "notification given up",
                    extra={"channel": channel, "attempts": attempts, "error": error},
                )
                return Outcome(attempts, failed_at=now, last_error=error)
            self._metrics.retried.labels(channel).inc()
            delay = min(
                self._settings.notify_backoff_s * 2 ** (attempts - 1),
                self._settings.notify_backoff_max_s,
            )
            return Outcome(
                attempts, next_attempt_at=now + timedelta(seconds=delay), last_error=error
            )
        self._metrics.sent.labels(channel).inc()
        return Outcome(attempts, sent_at=now)

    def _renewing(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Renew the claims held here every third of their TTL while sends go on."""

        async def beat() -> bool:
            if self._held:
                ids = list(self._held)
                asked_at = asyncio.get_running_loop().time()
                async with self._sessions() as session, session.begin():
                    kept = await claims.renew(session, ids, self._holder, self._ttl)
                self._confirmed([i for i in kept if i in self._held], asked_at)
                for lost in set(ids) - set(kept):
                    if lost in self._held:
                        self._held[lost] = asked_at  # unsure: take it again before sending
            return True

        name = f"notify-{self._producer}"
        return leases.heartbeat(beat, self._ttl.total_seconds() / 3, name)

    async def _record(self, outcomes: list[tuple[int, Outcome]]) -> list[bool]:
        async with self._sessions() as session, session.begin():
            recorded = await claims.finish_all(session, self._holder, outcomes)
        for (row_id, _), done in zip(outcomes, recorded, strict=True):
            self._held.pop(row_id, None)
            if not done:
                log.warning(
                    "notification claim lost while sending; it may be sent again",
                    extra={"notification": row_id},
                )
        return recorded

    async def _release(self) -> None:
        await self._recorder.settle()  # outcomes of finished sends first
        async with self._sessions() as session, session.begin():
            await claims.release(session, self._producer, self._holder)


async def _all(work: list[Coroutine[Any, Any, int]]) -> list[int]:
    """Run `work` concurrently; on the first error cancel the rest and raise that error."""
    tasks = [asyncio.create_task(w) for w in work]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A notification neither sent nor given up on: what it says, how often it was tried,
    when it is due again and why the last attempt failed."""

    id: int
    notification: Notification
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


async def pending(engine: AsyncEngine, producer: str) -> list[Undelivered]:
    """Undelivered, not-given-up notifications of a producer (for tests and operators)."""
    async with session_factory(engine)() as session:
        rows = await session.execute(
            select(notifications)
            .where(
                notifications.c.producer == producer,
                notifications.c.sent_at.is_(None),
                notifications.c.failed_at.is_(None),
            )
            .order_by(notifications.c.id)
        )
        return [
            Undelivered(
                id=row.id,
                notification=stored_notification(row),
                attempts=row.attempts,
                next_attempt_at=row.next_attempt_at,
                last_error=row.last_error,
            )
            for row in rows
        ]


__all__ = [
    "Channel",
    "EmailSender",
    "Notification",
    "NotificationDispatcher",
    "Sender",
    "Undelivered",
    "WebhookSender",
    "claim_ttl_for",
    "pending",
    "queue",
]
