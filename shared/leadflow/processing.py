"""Applies consumed events exactly once: decode, inbox check, handler, commit — or dead-letter.

Handlers are typed functions of `(session, event, now)`; they never see a raw Kafka
record and never commit: the processor owns the transaction, which holds the inbox
row, the handler's state change and its outbox rows together.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from time import perf_counter

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow.bus import Publisher, Record
from leadflow.db.engine import session_factory
from leadflow.events import Envelope
from leadflow.inbox import first_delivery
from leadflow.metrics import ConsumerMetrics
from leadflow.settings import Settings
from leadflow.topics import DLQ

log = logging.getLogger(__name__)

EventHandler = Callable[[AsyncSession, Envelope, datetime], Awaitable[None]]
Clock = Callable[[], datetime]

_TRANSIENT = (OperationalError, InterfaceError)
# PostgreSQL aborts one transaction of a deadlock (40P01) or a serialization conflict (40001);
# running it again is the documented remedy, and nothing about the event is wrong.
_RETRY_SQLSTATES = {"40P01", "40001"}
_MAX_BACKOFF_S = 5.0


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


class PoisonEvent(ValueError):
    """The event is well-formed but can never be applied (it breaks a business invariant)."""


class EventProcessor:
    """Applies a batch of records in one transaction; isolates and dead-letters failures."""

    def __init__(
        self,
        *,
        consumer: str,
        engine: AsyncEngine,
        handler: EventHandler,
        accepts: set[str],
        dead_letters: Publisher,
        settings: Settings,
        metrics: ConsumerMetrics,
        after_commit: Callable[[], None] = lambda: None,
        clock: Clock = utcnow,
    ) -> None:
        self._consumer = consumer
        self._sessions = session_factory(engine)
        self._handler = handler
        self._accepts = accepts
        self._dead_letters = dead_letters
        self._settings = settings
        self._metrics = metrics
        self._after_commit = after_commit
        self._clock = clock

    async def process(self, records: list[Record]) -> None:
        """Apply every record once; returns when all effects are committed or dead-lettered."""
        started = perf_counter()
        events: list[tuple[Record, Envelope]] = []
        for record in records:
            try:
                events.append((record, Envelope.from_bytes(record.value)))
            except ValueError as exc:  # orjson.JSONDecodeError and ValidationError included
                await self._dead_letter(record, "invalid_event", _describe(exc))
        counts: Counter[str] = Counter()
        try:
            counts = await self._with_retries(lambda: self._apply(events))
        except Exception:
            log.warning(
                "batch failed; applying its events one by one",
                extra={"consumer": self._consumer, "records": len(events)},
            )
            for record, event in events:
                counts += await self._apply_alone(record, event)
        self._after_commit()
        for type_, count in counts.items():
            if type_ == "duplicate":
                self._metrics.duplicates.inc(count)
            else:
                self._metrics.consumed.labels(type_).inc(count)
        self._metrics.batch_size.observe(len(records))
        self._metrics.processing_seconds.observe(perf_counter() - started)

    async def _apply(self, events: list[tuple[Record, Envelope]]) -> Counter[str]:
        counts: Counter[str] = Counter()
        async with self._sessions() as session, session.begin():
            now = self._clock()
            for _, event in events:
                if event.type not in self._accepts:
                    continue
                if not await first_delivery(session, self._consumer, event.id, now):
                    counts["duplicate"] += 1
                    continue
                await self._handler(session, event, now)
                counts[event.type] += 1
        return counts

    async def _apply_alone(self, record: Record, event: Envelope) -> Counter[str]:
        attempts = self._settings.consumer_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._with_retries(lambda: self._apply([(record, event)]))
            except PoisonEvent as exc:
                await self._dead_letter(record, "rejected_event", str(exc), event.id)
                return Counter()
            except Exception as exc:
                if attempt == attempts:
                    log.exception(
                        "event failed every attempt; dead-lettering it",
                        extra={"consumer": self._consumer, "event_id": event.id},
                    )
                    await self._dead_letter(record, "handler_error", _describe(exc), event.id)
                    return Counter()
                await asyncio.sleep(0.05 * 2**attempt)
        return Counter()  # pragma: no cover - the loop always returns

    async def _with_retries(self, attempt: Callable[[], Awaitable[Counter[str]]]) -> Counter[str]:
        """Retry while the database is unreachable or locked: that is nobody's poison."""
        delay = 0.05
        while True:
            try:
                return await attempt()
            except DBAPIError as exc:
                if not is_transient(exc):
                    raise
                log.warning("database unavailable; retrying", extra={"consumer": self._consumer})
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)

    async def _dead_letter(
        self, record: Record, reason: str, message: str, event_id: str | None = None
    ) -> None:
        headers = [
            ("leadflow-error-reason", reason.encode()),
            ("leadflow-error-message", message[:2000].encode()),
            ("leadflow-consumer", self._consumer.encode()),
            ("leadflow-original-topic", record.topic.encode()),
            ("leadflow-original-partition", str(record.partition).encode()),
            ("leadflow-original-offset", str(record.offset).encode()),
        ]
        key = record.key.decode(errors="replace") if record.key else (event_id or "")
        await self._dead_letters.publish(
            self._settings.topic(DLQ), key, record.value, headers + list(record.headers)
        )
        self._metrics.dead_lettered.labels(reason).inc()
        log.warning(
            "record dead-lettered",
            extra={"consumer": self._consumer, "reason": reason, "event_id": event_id},
        )


def is_transient(exc: DBAPIError) -> bool:
    """Whether running the transaction again may succeed (the event itself is not at fault)."""
    return isinstance(exc, _TRANSIENT) or getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10]
        )
    return f"{type(exc).__name__}: {exc}"
