"""Notifications to people (email, webhook, Slack-compatible webhook), durable and sent once.

A service queues a notification in the transaction that decided it (like the outbox),
under a dedupe key such as `sla:<assignment>:breached:email:<address>`: a replayed event
cannot queue it twice. A dispatcher then sends due rows, retries failures with
exponential backoff, and gives up after `LEADFLOW_NOTIFY_MAX_ATTEMPTS`, counting both.
A crash between a send and its bookkeeping resends once; emails carry a Message-ID and
webhooks a `webhook-id` derived from the dedupe key, so receivers can drop the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import cache
from typing import Any, Literal, Protocol

import aiosmtplib
import httpx
from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow import leases
from leadflow.db.engine import session_factory
from leadflow.db.tables import notifications
from leadflow.processing import utcnow
from leadflow.settings import Settings
from leadflow.webhooks import sign

log = logging.getLogger(__name__)

Channel = Literal["email", "webhook", "slack"]
DISPATCH_BATCH = 50


@dataclass(frozen=True)
class Notification:
    """One message to one recipient on one channel."""

    channel: Channel
    target: str
    subject: str
    body: str
    dedupe_key: str
    payload: Mapping[str, Any]


async def queue(
    session: AsyncSession, producer: str, notification: Notification, now: datetime
) -> bool:
    """Queue a notification in the caller's transaction; False if its dedupe key was queued."""
    values = {
        "producer": producer,
        "channel": notification.channel,
        "target": notification.target,
        "dedupe_key": notification.dedupe_key,
        "subject": notification.subject[:300],
        "body": notification.body,
        "payload": dict(notification.payload),
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now,
    }
    dialect = session.bind.dialect.name if session.bind is not None else ""
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(notifications).values(values).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


class Sender(Protocol):
    """Delivers one notification or raises."""

    async def send(self, notification: Notification) -> None: ...


class EmailSender:
    """Sends email over SMTP (`LEADFLOW_SMTP_*`)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, notification: Notification) -> None:
        """Send one email; raises on any SMTP failure."""
        s = self._settings
        message = EmailMessage()
        message["From"] = s.smtp_sender
        message["To"] = notification.target
        message["Subject"] = notification.subject
        domain = s.smtp_sender.rpartition("@")[2] or "leadflow.local"
        message["Message-ID"] = f"<{_digest(notification.dedupe_key)}@{domain}>"
        message.set_content(notification.body)
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            start_tls=s.smtp_starttls,
            use_tls=s.smtp_tls,
            timeout=s.notify_timeout_s,
        )


class WebhookSender:
    """POSTs JSON; signed with Standard Webhooks when the target's secret is known."""

    def __init__(self, client: httpx.AsyncClient, secrets: Mapping[str, str] | None = None) -> None:
        self._client = client
        self._secrets = dict(secrets or {})

    async def send(self, notification: Notification) -> None:
        """POST the notification; raises unless the receiver answers 2xx."""
        if notification.channel == "slack":
            body = httpx.Request("POST", "/", json={"text": notification.body}).content
        else:
            body = httpx.Request("POST", "/", json=dict(notification.payload)).content
        msg_id = f"msg_{_digest(notification.dedupe_key)}"
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
        }
        secret = self._secrets.get(notification.target)
        if secret:
            headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
        response = await self._client.post(notification.target, content=body, headers=headers)
        if not response.is_success:
            raise RuntimeError(f"the receiver answered {response.status_code}")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class NotificationMetrics:
    """Sends, retries and final failures, by channel."""

    sent: Counter
    retried: Counter
    failed: Counter


@cache
def notification_metrics(service: str) -> NotificationMetrics:
    """The notification metrics of `service` (created once per process)."""
    prefix = f"leadflow_{service}_notifications"
    return NotificationMetrics(
        sent=Counter(f"{prefix}_sent_total", "Notifications delivered, by channel.", ["channel"]),
        retried=Counter(
            f"{prefix}_retried_total", "Failed sends scheduled for another try.", ["channel"]
        ),
        failed=Counter(
            f"{prefix}_failed_total", "Notifications given up after every attempt.", ["channel"]
        ),
    )


class NotificationDispatcher:
    """Sends a producer's due notifications; retries with backoff. Instances of a service
    take turns, one batch at a time, through a lease (`notify:<producer>`), so none is sent
    twice concurrently."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        producer: str,
        senders: Mapping[str, Sender],
    ) -> None:
        self._sessions = session_factory(engine)
        self._lease = f"notify:{producer}"
        self._holder = leases.new_holder()
        self._settings = settings
        self._producer = producer
        self._senders = senders
        self._metrics = notification_metrics(producer.replace("-", "_"))
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look for due notifications now."""
        self._wake.set()

    async def dispatch_once(self, now: datetime | None = None) -> int:
        """Try every due notification once; returns how many were delivered."""
        now = now or utcnow()
        async with self._sessions() as session:
            if not await self._due(session, now, limit=1):
                return 0  # an idle poll reads, and never writes the lease
        async with self._sessions() as session, session.begin():
            if not await leases.acquire(session, self._lease, self._holder):
                return 0  # another instance is sending a batch
            rows = await self._due(session, now)
            if not rows:
                await leases.release(session, self._lease, self._holder)
                return 0
        # No database lock is held while sending (SMTP and webhooks can be slow); the
        # lease covers the batch until its outcomes are recorded.
        outcomes = [(row["id"], await self._attempt(row, now)) for row in rows]
        async with self._sessions() as session, session.begin():
            await self._record(session, outcomes)
            await leases.release(session, self._lease, self._holder)
        return sum(1 for _, values in outcomes if values.get("sent_at") is not None)

    async def _due(
        self, session: AsyncSession, now: datetime, limit: int = DISPATCH_BATCH
    ) -> list[dict[str, Any]]:
        query = (
            select(notifications)
            .where(
                notifications.c.producer == self._producer,
                notifications.c.sent_at.is_(None),
                notifications.c.failed_at.is_(None),
                notifications.c.next_attempt_at <= now,
            )
            .order_by(notifications.c.next_attempt_at, notifications.c.id)
            .limit(limit)
        )
        return [dict(r._mapping) for r in await session.execute(query)]

    async def _record(
        self, session: AsyncSession, outcomes: list[tuple[int, dict[str, Any]]]
    ) -> None:
        for row_id, values in outcomes:
            await session.execute(
                update(notifications).where(notifications.c.id == row_id).values(values)
            )

    async def _attempt(self, row: dict[str, Any], now: datetime) -> dict[str, Any]:
        notification = Notification(
            channel=row["channel"],
            target=row["target"],
            subject=row["subject"],
            body=row["body"],
            dedupe_key=row["dedupe_key"],
            payload=row["payload"],
        )
        sender = self._senders.get(row["channel"])
        attempts = row["attempts"] + 1
        try:
            if sender is None:
                raise RuntimeError(f"no sender is configured for channel {row['channel']!r}")
            await asyncio.wait_for(sender.send(notification), self._settings.notify_timeout_s)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
            if attempts >= self._settings.notify_max_attempts:
                self._metrics.failed.labels(row["channel"]).inc()
                log.warning(
                    "notification given up",
                    extra={"channel": row["channel"], "attempts": attempts, "error": error},
                )
                return {"attempts": attempts, "failed_at": now, "last_error": error}
            self._metrics.retried.labels(row["channel"]).inc()
            delay = min(
                self._settings.notify_backoff_s * 2 ** (attempts - 1),
                self._settings.notify_backoff_max_s,
            )
            return {
                "attempts": attempts,
                "next_attempt_at": now + timedelta(seconds=delay),
                "last_error": error,
            }
        self._metrics.sent.labels(row["channel"]).inc()
        return {"attempts": attempts, "sent_at": now, "last_error": None}

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.notify_poll_s)
            self._wake.clear()
            try:
                while await self.dispatch_once() == DISPATCH_BATCH:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("notification dispatch failed; retrying", exc_info=True)

    def start(self) -> None:
        """Dispatch in the background until stopped."""
        self._task = asyncio.create_task(self._run(), name=f"notify-{self._producer}")

    async def stop(self) -> None:
        """Stop dispatching (what is due stays queued for the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def pending(engine: AsyncEngine, producer: str) -> list[dict[str, Any]]:
    """Undelivered, not-given-up notifications of a producer (for tests and operators)."""
    async with session_factory(engine)() as session:
        rows = await session.execute(
            select(notifications).where(
                notifications.c.producer == producer,
                notifications.c.sent_at.is_(None),
                notifications.c.failed_at.is_(None),
            )
        )
        return [dict(r._mapping) for r in rows]


__all__ = [
    "EmailSender",
    "Notification",
    "NotificationDispatcher",
    "Sender",
    "WebhookSender",
    "pending",
    "queue",
]
