"""Getting accepted events to the broker: directly, or through the durable spool.

A webhook's events are published directly when the spool is empty; if the broker does
not acknowledge them within `spool_after_s` (or refuses them), they are appended to the
spool (fsync'd) and the webhook is still answered 202. While the spool holds anything,
or before the broker has been reached at all (the intake starts without it), new events
go through it too, behind the older ones, so that no event of a person overtakes an
earlier one. The relay drains the spool in order when the broker is there; a relayed
event that was also published late by the direct attempt keeps its event id, and
consumers' inboxes drop the second copy.

The relay runs under the process's supervisor: an unexpected error restarts it (it
re-reads the spool from its cursor, so the worst case is a batch published twice, which
the inboxes drop). A cursor that cannot be written is retried, and after a failed append
the relay probes the disk until it writes again, so readiness comes back by itself.

Each event carries the webhook's trace context as a `traceparent` header, kept in the
spool with it, so a lead spooled through an outage stays in its trace (leadflow.tracing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from leadflow import tracing
from leadflow.bus import Message, Publisher
from leadflow.events import SerializedEvent
from leadflow.settings import Settings
from leadflow.supervisor import Supervisor
from leadflow.topics import Lane, topic_for
from leadflow_intake.metrics import PUBLISH_SECONDS, RELAYED, SPOOL_BYTES, SPOOL_DEPTH, SPOOLED
from leadflow_intake.settings import IntakeSettings
from leadflow_intake.spool import Spool, SpoolBatch, SpooledEvent, SpoolError

log = logging.getLogger(__name__)

_DIRECT_PUBLISH_SECONDS = PUBLISH_SECONDS.labels("direct")
RELAY_TASK = "spool-relay"


class Delivery:
    """Publishes accepted events, spooling them when the broker is down, slow or not yet
    reached (`publisher` None until `connect`)."""

    def __init__(
        self,
        settings: Settings,
        intake: IntakeSettings,
        publisher: Publisher | None,
        spool: Spool,
    ) -> None:
        self._settings = settings
        self._intake = intake
        self._publisher = publisher
        self.spool = spool
        self.spooling = spool.depth > 0 or publisher is None
        self._appending = 0
        self._wake = asyncio.Event()
        self._supervisor: Supervisor | None = None
        self._stopping = False
        self.broker_ok = publisher is not None
        self.spool_ok = True
        self._update_gauges()

    def start(self, supervisor: Supervisor) -> None:
        """Start the relay in the background, under `supervisor`."""
        self._supervisor = supervisor
        supervisor.spawn(RELAY_TASK, self._run_relay)
        self._wake.set()

    def connect(self, publisher: Publisher) -> None:
        """The broker is reached: relay what was spooled, then publish directly."""
        self._publisher = publisher
        self.broker_ok = True
        self._wake.set()

    async def stop(self) -> None:
        """Stop relaying (what is still spooled stays on disk for the next start); the
        supervisor cancels the task."""
        self._stopping = True
        self._wake.set()

    @property
    def connected(self) -> bool:
        """Whether the broker has been reached since start."""
        return self._publisher is not None

    @property
    def relay_running(self) -> bool:
        """Whether the relay task is alive (between restarts included)."""
        return self._supervisor is not None and self._supervisor.running(RELAY_TASK)

    @property
    def accepting(self) -> bool:
        """Whether a webhook can be kept right now: by the spool, or, while nothing is
        spooled, by the broker directly."""
        return self.spool_ok or (self.broker_ok and not self.spooling)

    async def submit(self, events: Sequence[SerializedEvent], lane: Lane = "live") -> None:
        """Hand events to the broker or the spool, on `lane`'s topics; raises SpoolError
        when neither can keep them."""
        # The webhook's trace context (its request's span) goes with each of its events.
        traceparent = tracing.current_traceparent()
        messages = [
            SpooledEvent(
                self._settings.topic(topic_for(e.type, lane)), e.subject, e.value, traceparent
            )
            for e in events
        ]
        if not messages:
            return
        reason = "behind" if self._publisher is not None else "no_broker"
        if not self.spooling and self._publisher is not None:
            reason = await self._publish_directly(self._publisher, messages)
            if not reason:
                return
            # From now on, later webhooks queue behind this one until the relay catches up.
            self.spooling = True
        await self._append(messages, reason)

    async def _publish_directly(self, publisher: Publisher, messages: list[SpooledEvent]) -> str:
        """'' when the broker acknowledged in time; else why not (timeout or error)."""
        started = time.perf_counter()
        try:
            # A publish that times out is not withdrawn: it may still succeed later, and
            # the spooled copy keeps the same event id, so consumers' inboxes drop one.
            await publisher.publish_many(_messages(messages), timeout_s=self._intake.spool_after_s)
        except TimeoutError:
            self.broker_ok = False
            return "timeout"
        except Exception:
            log.warning("publish failed; spooling", exc_info=True)
            self.broker_ok = False
            return "error"
        _DIRECT_PUBLISH_SECONDS.observe(time.perf_counter() - started)
        self.broker_ok = True
        return ""

    async def _append(self, messages: list[SpooledEvent], reason: str) -> None:
        self._appending += 1
        try:
            await asyncio.to_thread(self.spool.append, messages)
        except SpoolError:
            self.spool_ok = False
            log.exception("the spool cannot store events")
            raise
        finally:
            self._appending -= 1
        self.spool_ok = True
        SPOOLED.labels(reason).inc(len(messages))
        self._update_gauges()
        self._wake.set()

    async def _run_relay(self) -> None:
        backoff = 0.1
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            self._wake.clear()
            if not self.spool_ok:
                await self._probe()
            publisher = self._publisher
            if publisher is None:
                continue
            while self.spool.depth > 0 and not self._stopping:
                if await self._relay_batch(publisher):
                    backoff = 0.1
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._intake.relay_backoff_max_s)
            # Only once nothing is spooled or being spooled may webhooks publish directly.
            if self.spool.depth == 0 and self._appending == 0:
                self.spooling = False
            if self._supervisor is not None:
                self._supervisor.ok(RELAY_TASK)

    async def _probe(self) -> None:
        """After a failed append: writable again? (Readiness follows.)"""
        try:
            await asyncio.to_thread(self.spool.probe)
        except SpoolError as exc:
            log.info("the spool cannot write yet", extra={"error": str(exc)})
            return
        log.info("the spool writes again")
        self.spool_ok = True

    async def _relay_batch(self, publisher: Publisher) -> bool:
        """Relay the oldest spooled events; whether the broker acknowledged them."""
        batch = await asyncio.to_thread(self.spool.peek, self._intake.relay_batch_max)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(
                publisher.publish_many(_messages(batch.events)),
                self._settings.publish_timeout_s,
            )
        except Exception:
            log.warning("relay: the broker did not take the spooled events yet", exc_info=True)
            self.broker_ok = False
            return False
        PUBLISH_SECONDS.labels("relay").observe(time.perf_counter() - started)
        self.broker_ok = True
        await self._commit(batch)
        RELAYED.inc(len(batch.events))
        self._update_gauges()
        return True

    async def _commit(self, batch: SpoolBatch) -> None:
        """Move the cursor past a relayed batch, retrying while the disk refuses (the batch
        is on the broker: publishing it again would only make duplicates to drop)."""
        backoff = 0.1
        while True:
            try:
                await asyncio.to_thread(self.spool.commit, batch)
                return
            except OSError as exc:
                if self._stopping:
                    return  # the batch is relayed again at the next start
                log.warning(
                    "relay: cannot write the spool's cursor; retrying",
                    extra={"error": str(exc), "retry_in_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._intake.relay_backoff_max_s)

    def _update_gauges(self) -> None:
        SPOOL_DEPTH.set(self.spool.depth)
        SPOOL_BYTES.set(self.spool.bytes)


def _messages(events: Sequence[SpooledEvent]) -> list[Message]:
    """The events as messages to publish, each with its trace context header; records the
    spool blanked (an erased person's, `Spool.forget`) have no topic and are left out."""
    return [tracing.message(e.topic, e.key, e.value, e.traceparent) for e in events if e.topic]
