"""Getting accepted events to the broker: directly, or through the durable spool.

A webhook's events are published directly when the spool is empty; if the broker does
not acknowledge them within `spool_after_s` (or refuses them), they are appended to the
spool (fsync'd) and the webhook is still answered 202. While the spool holds anything,
new events go through it too, behind the older ones, so that no event of a person
overtakes an earlier one. The relay drains the spool in order when the broker is back;
a relayed event that was also published late by the direct attempt keeps its event id,
and consumers' inboxes drop the second copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from leadflow.bus import Publisher
from leadflow.events import SerializedEvent
from leadflow.settings import Settings
from leadflow.topics import topic_for
from leadflow_intake.metrics import PUBLISH_SECONDS, RELAYED, SPOOL_BYTES, SPOOL_DEPTH, SPOOLED
from leadflow_intake.settings import IntakeSettings
from leadflow_intake.spool import Spool, SpooledEvent, SpoolError

log = logging.getLogger(__name__)

_DIRECT_PUBLISH_SECONDS = PUBLISH_SECONDS.labels("direct")


class Delivery:
    """Publishes accepted events, spooling them when the broker is down or slow."""

    def __init__(
        self, settings: Settings, intake: IntakeSettings, publisher: Publisher, spool: Spool
    ) -> None:
        self._settings = settings
        self._intake = intake
        self._publisher = publisher
        self.spool = spool
        self._spooling = spool.depth > 0
        self._appending = 0
        self._wake = asyncio.Event()
        self._relay: asyncio.Task[None] | None = None
        self._stopping = False
        self.broker_ok = True
        self.spool_ok = True
        self._update_gauges()

    def start(self) -> None:
        """Start the relay in the background."""
        self._relay = asyncio.create_task(self._run_relay(), name="intake-spool-relay")
        self._wake.set()

    async def stop(self) -> None:
        """Stop the relay (what is still spooled stays on disk for the next start)."""
        self._stopping = True
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay

    @property
    def relay_running(self) -> bool:
        """Whether the relay task is alive."""
        return self._relay is not None and not self._relay.done()

    async def submit(self, events: Sequence[SerializedEvent]) -> None:
        """Hand events to the broker or the spool; raises SpoolError when neither can keep them."""
        messages = [
            SpooledEvent(self._settings.topic(topic_for(e.type)), e.subject, e.value)
            for e in events
        ]
        if not messages:
            return
        reason = "behind"
        if not self._spooling:
            reason = await self._publish_directly(messages)
            if not reason:
                return
            # From now on, later webhooks queue behind this one until the relay catches up.
            self._spooling = True
        await self._append(messages, reason)

    async def _publish_directly(self, messages: list[SpooledEvent]) -> str:
        """'' when the broker acknowledged in time; else why not (timeout or error)."""
        started = time.perf_counter()
        try:
            # A publish that times out is not withdrawn: it may still succeed later, and
            # the spooled copy keeps the same event id, so consumers' inboxes drop one.
            await self._publisher.publish_many(
                [(m.topic, m.key, m.value) for m in messages], timeout_s=self._intake.spool_after_s
            )
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
            while self.spool.depth > 0 and not self._stopping:
                if await self._relay_batch():
                    backoff = 0.1
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._intake.relay_backoff_max_s)
            # Only once nothing is spooled or being spooled may webhooks publish directly.
            if self.spool.depth == 0 and self._appending == 0:
                self._spooling = False

    async def _relay_batch(self) -> bool:
        """Relay the oldest spooled events; whether the broker acknowledged them."""
        batch = await asyncio.to_thread(self.spool.peek, self._intake.relay_batch_max)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(
                self._publisher.publish_many([(e.topic, e.key, e.value) for e in batch.events]),
                self._settings.publish_timeout_s,
            )
        except Exception:
            log.warning("relay: the broker did not take the spooled events yet", exc_info=True)
            self.broker_ok = False
            return False
        PUBLISH_SECONDS.labels("relay").observe(time.perf_counter() - started)
        self.broker_ok = True
        await asyncio.to_thread(self.spool.commit, batch)
        RELAYED.inc(len(batch.events))
        self._update_gauges()
        return True

    def _update_gauges(self) -> None:
        SPOOL_DEPTH.set(self.spool.depth)
        SPOOL_BYTES.set(self.spool.bytes)
