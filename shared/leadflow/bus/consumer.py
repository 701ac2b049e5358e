"""A manual-commit Kafka consumer that pauses through outages instead of losing events.

Offsets are committed only after the processor returned, i.e. after its database
transaction committed, so a crash anywhere replays the batch (at-least-once) and the
processor's inbox makes the replay a no-op.

When the processor cannot apply a batch (the database or the broker is away), nothing is
committed: the consumer rewinds to the batch's first records, reports itself paused
(`paused` with the reason, the `leadflow_consumer_paused` gauge), waits with a capped,
doubling backoff and tries the same records again, for as long as it takes. It stays in
its group meanwhile: aiokafka heartbeats from its own task, and the consumer polls again
after each wait, well within `max.poll.interval.ms`. A broker that is unreachable when
the consumer starts, or that fails a fetch, is waited for the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from leadflow.bus import BatchProcessor, Record
from leadflow.bus.options import connection_options
from leadflow.faults import describe, is_transient
from leadflow.lanes import BatchGate
from leadflow.settings import Settings

log = logging.getLogger(__name__)

_RETRY_MIN_S = 0.25


_PAUSED = Gauge(
    "leadflow_consumer_paused",
    "1 while the consumer is paused because the database or the broker is unavailable.",
    ["group"],
)


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Waits for the batch in flight to finish (and commit) before partitions move."""

    def __init__(self, batch_lock: asyncio.Lock, group: str) -> None:
        self._batch_lock = batch_lock
        self._group = group

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        async with self._batch_lock:
            log.info("partitions revoked", extra={"group": self._group, "count": len(revoked)})

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"group": self._group, "count": len(assigned)})


class KafkaConsumerRunner:
    """Consumes `getmany` batches, hands them to a processor, then commits their offsets."""

    def __init__(
        self,
        settings: Settings,
        group: str,
        topics: list[str],
        processor: BatchProcessor,
        gate: BatchGate | None = None,
        batch_max: int | None = None,
    ) -> None:
        self._settings = settings
        self._batch_max = batch_max or settings.consumer_batch_max
        # Lane priority (leadflow.lanes): called around each fetched batch.
        self._gate = gate
        self.group = group
        self._topics = topics
        self._processor = processor
        self._batch_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._loop_done = asyncio.Event()
        self._loop_done.set()
        self._delay = _RETRY_MIN_S
        self._broken = False
        # Whether the pause came from a failed fetch (a later answered fetch ends it) rather
        # than from a batch the processor could not apply (only applying it ends that).
        self._paused_by_fetch = False
        self._gauge = _PAUSED.labels(group)
        self._gauge.set(0)
        self.running = False
        self.paused: str | None = "starting"

    async def start(self) -> None:
        """Join the group and consume in a task of its own (for tools and tests)."""
        await self._connect()
        self._task = asyncio.create_task(self.run(), name=f"consume-{self.group}")

    async def run(self) -> None:
        """Consume until stopped; waits through outages. Raises only on a bug (to be restarted)."""
        self._loop_done.clear()
        try:
            while not self._stopping.is_set():
                if self._consumer is None and not await self._try_connect():
                    continue
                await self._consume_once()
        finally:
            self.running = False
            self._loop_done.set()

    async def _try_connect(self) -> bool:
        try:
            await self._connect()
        except Exception as exc:
            if not is_transient(exc):
                raise
            await self._wait(f"broker unreachable: {describe(exc)}")
            return False
        return True

    async def _connect(self) -> None:
        consumer = AIOKafkaConsumer(
            **connection_options(self._settings),
            client_id=f"{self._settings.kafka_client_id}-{self.group}",
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=self._settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=self._settings.consumer_heartbeat_ms,
            rebalance_timeout_ms=self._settings.consumer_rebalance_timeout_ms,
            fetch_max_wait_ms=self._settings.consumer_fetch_max_wait_ms,
        )
        consumer.subscribe(self._topics, listener=_CommitOnRevoke(self._batch_lock, self.group))
        try:
            await consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), self._settings.stop_timeout_s)
            raise
        self._consumer = consumer
        self.running = True
        self._resume()

    async def _consume_once(self) -> None:
        assert self._consumer is not None
        try:
            batches = await self._consumer.getmany(
                timeout_ms=self._settings.consumer_poll_ms,
                max_records=self._batch_max,
            )
        except Exception as exc:
            if isinstance(exc, KafkaError) and not _coordination_died(exc):
                await self._wait(f"broker unavailable: {describe(exc)}")
                self._paused_by_fetch = True
                return
            # aiokafka's group coordinator can die on a connection the broker closed (under
            # uvloop a RuntimeError on the closed transport): it says so once, as a
            # KafkaError raised from that error, or re-raises the error on every fetch.
            # Such a client never joins its group again, so it is replaced by a fresh one.
            log.warning(
                "kafka consumer broken; connecting a new one",
                extra={"group": self.group, "reason": describe(exc)},
            )
            await self._drop_consumer()
            await self._wait(f"broker connection lost: {describe(exc)}")
            return
        if not batches:
            # A fetch answered again: a consumer paused only because a fetch failed is
            # back, even on a topic with nothing to read (a quiet bulk lane).
            if self._paused_by_fetch:
                self._resume()
            return
        if self._gate is not None:
            await self._gate.before()
        try:
            async with self._batch_lock:
                failure = await self._process(batches)
        finally:
            if self._gate is not None:
                self._gate.after()
        if self._broken:  # closed outside the batch lock: closing may revoke partitions
            self._broken = False
            await self._drop_consumer()
            return
        if failure is None:
            self._resume()
            return
        # Nothing of the batch is committed: rewind to its first records and try again.
        assigned = self._consumer.assignment()
        for tp, messages in batches.items():
            if tp in assigned:
                self._consumer.seek(tp, messages[0].offset)
        self._paused_by_fetch = False
        await self._wait(failure)

    async def _process(self, batches: dict[TopicPartition, list[Any]]) -> str | None:
        """Process and commit one batch; the reason it could not be, or None."""
        assert self._consumer is not None
        records = [_record(message) for messages in batches.values() for message in messages]
        try:
            await self._processor.process(records)
        except Exception as exc:
            if is_transient(exc):
                log.warning(
                    "infrastructure unavailable; the batch will be retried",
                    extra={"group": self.group, "reason": describe(exc)},
                )
            else:
                log.exception("batch failed; it will be retried", extra={"group": self.group})
            return describe(exc)
        try:
            await self._consumer.commit(
                {tp: messages[-1].offset + 1 for tp, messages in batches.items()}
            )
        except KafkaError:
            # Typically a rebalance took the partitions away: their new owner replays
            # the batch, and its inbox drops what was already applied.
            log.warning("offset commit failed; the batch will be replayed", exc_info=True)
        except Exception as exc:  # a broken client (see _consume_once): replaced next round
            log.warning(
                "offset commit failed on a broken consumer; the batch will be replayed",
                extra={"group": self.group, "reason": describe(exc)},
            )
            self._broken = True
        return None

    async def _drop_consumer(self) -> None:
        """Close the current client (bounded) so the next round connects a fresh one; its
        uncommitted records are fetched again by whoever owns their partitions next."""
        consumer, self._consumer = self._consumer, None
        self.running = False
        if consumer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), self._settings.stop_timeout_s)

    async def _wait(self, reason: str) -> None:
        """Report the pause and wait (capped backoff), or less if the consumer is stopping."""
        if self.paused is None or self.paused == "starting":
            log.warning("consumer paused", extra={"group": self.group, "reason": reason})
        self.paused = reason
        self._gauge.set(1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self._delay)
        self._delay = min(self._delay * 2, self._settings.retry_backoff_max_s)

    def _resume(self) -> None:
        if self.paused is not None and self.paused != "starting":
            log.info("consumer resumed", extra={"group": self.group})
        self.paused = None
        self._paused_by_fetch = False
        self._delay = _RETRY_MIN_S
        self._gauge.set(0)

    async def lag(self) -> int:
        """Messages between this group's position and the end of its assigned partitions."""
        consumer = self._consumer
        if consumer is None:
            return 0
        total = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            with contextlib.suppress(KafkaError, AssertionError):
                total += max(0, high - await consumer.position(tp))
        return total

    async def stop(self) -> None:
        """Finish the batch in flight, commit it, and leave the group (bounded)."""
        self._stopping.set()
        try:
            await asyncio.wait_for(self._loop_done.wait(), self._settings.stop_timeout_s)
        except TimeoutError:
            log.warning("consumer did not finish its batch in time", extra={"group": self.group})
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            try:
                await asyncio.wait_for(self._consumer.stop(), self._settings.stop_timeout_s)
            except (TimeoutError, KafkaError):
                log.warning("kafka consumer did not stop cleanly within the bound")
        self.running = False
        self._gauge.set(0)


def _coordination_died(exc: KafkaError) -> bool:
    """Whether aiokafka's group coordinator task ended on an unexpected error: it wraps
    that error in a KafkaError raised from it, and the client stays out of its group."""
    return "Unexpected error during coordination" in str(exc)


def _record(message: Any) -> Record:
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=list(message.headers or []),
    )
