"""Applies consumed events exactly once: decode, inbox check, handler, commit — or dead-letter.

A consumer is one table, event type -> handler (`Handlers`): the processor applies only
the types it lists, and gives each run of consecutive events that one handler applies to
that handler, in Kafka order (`dispatch`). Handlers are typed functions of
`(session, events, now)`; they never see a raw Kafka record and never commit: the
processor owns the transaction, which holds the inbox row, the handler's state change
and its outbox rows together. Right after the commit it
hands those outbox rows to its `outbox` to publish (leadflow.outbox), before the batch's
offsets are committed. While tracing, each event is handled in a span of its lead's trace
(leadflow.tracing), continued from the record's `traceparent` header.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Protocol

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow import erasure, tracing
from leadflow.bus import Publisher, Record, structured
from leadflow.db.engine import session_factory
from leadflow.events import Envelope
from leadflow.faults import InfrastructureUnavailable, describe, is_transient
from leadflow.inbox import first_deliveries
from leadflow.logs import redact
from leadflow.metrics import ConsumerMetrics
from leadflow.outbox import Written, written
from leadflow.settings import Settings
from leadflow.topics import DLQ

__all__ = [
    "BatchHandler",
    "EventHandler",
    "EventProcessor",
    "Handlers",
    "InfrastructureUnavailable",
    "PoisonEvent",
    "dispatch",
    "is_transient",
    "one_by_one",
    "runs",
    "utcnow",
]

log = logging.getLogger(__name__)

EventHandler = Callable[[AsyncSession, Envelope, datetime], Awaitable[None]]
# A set-based handler: every new event of the batch at once, in Kafka order; it loads what
# they need in a few statements, applies them in memory one by one, and writes back in bulk.
BatchHandler = Callable[[AsyncSession, Sequence[Envelope], datetime], Awaitable[None]]
# What a consumer applies: event type -> the handler of that type's events. One handler
# may serve several types: those of its events that follow one another in a batch reach
# it together (`runs`), so a batch still costs it a few statements, not one per event.
Handlers = Mapping[str, BatchHandler]
Clock = Callable[[], datetime]
_NO_PARENTS: Mapping[str, str] = {}


class CommittedOutbox(Protocol):
    """Publishes the outbox rows of a transaction that just committed (OutboxRelay)."""

    async def publish_committed(self, rows: Sequence[Written]) -> None: ...


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


class PoisonEvent(ValueError):
    """The event is well-formed but can never be applied (it breaks a business invariant)."""


class EventProcessor:
    """Applies a batch of records in one transaction; isolates and dead-letters poison.

    The contract with the consumer that calls `process`:
    * it returns once every record's effects are committed, or the record is dead-lettered
      as poison (not an event, or an event its handler fails on every time while the
      database answers); the records' offsets may then be committed;
    * it raises `InfrastructureUnavailable` when the database or the broker cannot be used
      (connection refused or reset, server starting up or shutting down, disk full, a
      locked SQLite file, a deadlock victim, the dead-letter topic unreachable). Nothing
      is dead-lettered for that: the caller keeps the offsets, waits and hands over the
      same records again; what was committed before the fault is dropped by the inbox.
    """

    def __init__(
        self,
        *,
        consumer: str,
        engine: AsyncEngine,
        handlers: Handlers,
        dead_letters: Publisher,
        settings: Settings,
        metrics: ConsumerMetrics,
        outbox: CommittedOutbox | None = None,
        after_commit: Callable[[], None] = lambda: None,
        clock: Clock = utcnow,
    ) -> None:
        self._consumer = consumer
        self._engine = engine
        self._sessions = session_factory(engine)
        if not handlers:
            raise ValueError("give the processor the handler of at least one event type")
        self._handle = dispatch(handlers)
        self._accepts = frozenset(handlers)
        self._dead_letters = dead_letters
        self._settings = settings
        self._metrics = metrics
        self._outbox = outbox
        self._after_commit = after_commit
        self._clock = clock

    @property
    def accepts(self) -> frozenset[str]:
        """The event types the processor applies: its table's; it skips any other (neither
        applied nor dead-lettered: a topic carries types this consumer has no use for)."""
        return self._accepts

    async def process(self, records: list[Record]) -> None:
        """Apply every record once; raises InfrastructureUnavailable to be called again."""
        started = perf_counter()
        events: list[tuple[Record, Envelope]] = []
        poison: list[_DeadLetter] = []
        for record in records:
            try:
                events.append((record, Envelope.from_bytes(record.value)))
            except ValueError as exc:  # orjson.JSONDecodeError and ValidationError included
                poison.append(_DeadLetter(record, "invalid_event", _describe(exc)))
        counts: Counter[str] = Counter()
        outgoing: list[Written] = []
        try:
            counts = await self._apply(events, outgoing)
        except Exception as exc:
            if is_transient(exc):
                raise InfrastructureUnavailable(describe(exc)) from exc
            log.warning(
                "batch failed; applying its events one by one",
                extra={"consumer": self._consumer, "records": len(events)},
            )
            try:
                for record, event in events:
                    counts += await self._apply_alone(record, event, poison, outgoing)
            finally:
                # What committed before an outage is published all the same.
                await self._publish(outgoing)
            outgoing = []
        await self._publish(outgoing)
        # Dead letters go out last, in offset order: if the batch meets an outage first,
        # it is handed over again and nothing was dead-lettered twice.
        for letter in sorted(poison, key=lambda p: (p.record.partition, p.record.offset)):
            await self._dead_letter(letter)
        self._after_commit()
        for type_, count in counts.items():
            if type_ == "duplicate":
                self._metrics.duplicates.inc(count)
            else:
                self._metrics.consumed.labels(type_).inc(count)
        self._metrics.batch_size.observe(len(records))
        self._metrics.processing_seconds.observe(perf_counter() - started)

    async def _publish(self, outgoing: list[Written]) -> None:
        if self._outbox is not None and outgoing:
            await self._outbox.publish_committed(outgoing)

    async def _apply(
        self, events: list[tuple[Record, Envelope]], outgoing: list[Written]
    ) -> Counter[str]:
        accepted = [event for _, event in events if event.type in self._accepts]
        # Each event's trace context, from the record's headers (only while tracing).
        parents = (
            {e.id: p for r, e in events if (p := tracing.traceparent_in(r.headers))}
            if tracing.enabled()
            else _NO_PARENTS
        )
        async with self._sessions() as session:
            async with session.begin():
                counts = await self._apply_in(session, accepted, parents)
            outgoing += written(session)  # committed: now they may go out
        return counts

    async def _apply_in(
        self, session: AsyncSession, accepted: list[Envelope], parents: Mapping[str, str]
    ) -> Counter[str]:
        counts: Counter[str] = Counter()
        now = self._clock()
        new_ids = await first_deliveries(session, self._consumer, [e.id for e in accepted], now)
        fresh: list[Envelope] = []
        for event in accepted:
            if event.id in new_ids:
                new_ids.discard(event.id)  # a copy later in the same batch is a duplicate
                fresh.append(event)
                counts[event.type] += 1
            else:
                counts["duplicate"] += 1
        # Events about an erased person from before the erasure (late, or redelivered) would
        # bring them back: they are dropped here, for every consumer alike.
        fresh = await erasure.late(session, fresh) if fresh else fresh
        if fresh:
            with tracing.consuming(self._consumer, fresh, parents):
                await self._handle(session, fresh, now)
        return counts

    async def _apply_alone(
        self,
        record: Record,
        event: Envelope,
        poison: list[_DeadLetter],
        outgoing: list[Written],
    ) -> Counter[str]:
        attempts = self._settings.consumer_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._apply([(record, event)], outgoing)
            except PoisonEvent as exc:
                poison.append(_DeadLetter(record, "rejected_event", redact(str(exc)), event.id))
                return Counter()
            except Exception as exc:
                # A handler error is the event's fault only while the database answers:
                # a connection lost in the middle of a handler can surface as anything.
                if is_transient(exc) or not await self._database_answers():
                    raise InfrastructureUnavailable(describe(exc)) from exc
                if attempt == attempts:
                    log.exception(
                        "event failed every attempt; dead-lettering it",
                        extra={"consumer": self._consumer, "event_id": event.id},
                    )
                    poison.append(_DeadLetter(record, "handler_error", _describe(exc), event.id))
                    return Counter()
                await asyncio.sleep(0.05 * 2**attempt)
        return Counter()  # pragma: no cover - the loop always returns

    async def _database_answers(self) -> bool:
        try:
            async with self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def _dead_letter(self, letter: _DeadLetter) -> None:
        record, reason, event_id = letter.record, letter.reason, letter.event_id
        headers = [
            ("leadflow-error-reason", reason.encode()),
            ("leadflow-error-message", letter.message[:2000].encode()),
            ("leadflow-consumer", self._consumer.encode()),
            ("leadflow-original-topic", record.topic.encode()),
            ("leadflow-original-partition", str(record.partition).encode()),
            ("leadflow-original-offset", str(record.offset).encode()),
        ]
        key = record.key.decode(errors="replace") if record.key else (event_id or "")
        try:
            await self._dead_letters.publish(
                self._settings.topic(DLQ), key, record.value, headers + structured(record.headers)
            )
        except Exception as exc:
            if is_transient(exc):
                raise InfrastructureUnavailable(f"dead-letter topic: {describe(exc)}") from exc
            raise
        self._metrics.dead_lettered.labels(reason).inc()
        log.warning(
            "record dead-lettered",
            extra={"consumer": self._consumer, "reason": reason, "event_id": event_id},
        )


@dataclass(frozen=True, slots=True)
class _DeadLetter:
    """A record to dead-letter once its batch is done, and why."""

    record: Record
    reason: str
    message: str
    event_id: str | None = None


def runs(
    handlers: Handlers, events: Sequence[Envelope]
) -> list[tuple[BatchHandler, list[Envelope]]]:
    """`events` cut into runs of consecutive events that one handler applies, in order,
    each with its handler; events of a type `handlers` lacks are left out."""
    cut: list[tuple[BatchHandler, list[Envelope]]] = []
    for event in events:
        handler = handlers.get(event.type)
        if handler is None:
            continue
        if cut and cut[-1][0] == handler:
            cut[-1][1].append(event)
        else:
            cut.append((handler, [event]))
    return cut


def dispatch(handlers: Handlers) -> BatchHandler:
    """A batch handler that gives each of the batch's `runs` to its handler, one after the
    other: a person's events keep their order across handlers (an erasure after a score
    is applied after it, a score after the erasure after that), and each handler still
    gets its events as a set."""

    async def handle(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
        for handler, run in runs(handlers, events):
            await handler(session, run, now)

    return handle


def one_by_one(handler: EventHandler) -> BatchHandler:
    """A batch handler that applies each event with `handler`, in order."""

    async def handle(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
        for event in events:
            await handler(session, event, now)

    return handle


def _describe(exc: Exception) -> str:
    """What the dead-letter header says went wrong, without personal data: a validation
    error's places and rules (never the values), a database error's kind and first line
    (never its statement, parameters or detail), anything else masked like a log line."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10]
        )
    if isinstance(exc, StatementError):
        cause = exc.orig if exc.orig is not None else exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        return redact(f"{type(exc).__name__}: {type(cause).__name__}: {first}")
    return redact(f"{type(exc).__name__}: {exc}")
