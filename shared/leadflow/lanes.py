"""Lane priority: a service's bulk consumers give way to its live consumers.

Before each batch, a bulk consumer waits while a live consumer of the same process is
applying a batch or finished one within the last `quiet_s` (a live consumer with lag
fetches its next batch at once, so the pause between its batches is far shorter). The
wait is bounded by `max_wait_s`, so a steady trickle of live leads slows the bulk lane
down but never stops it: it still applies one batch per `max_wait_s` at least.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

QUIET_S = 0.02
MAX_WAIT_S = 0.5


class BatchGate(Protocol):
    """What a consumer calls around each batch it fetched."""

    async def before(self) -> None:
        """Called once a batch was fetched, before it is applied; may wait."""

    def after(self) -> None:
        """Called once the batch was applied (or failed)."""


class LanePriority:
    """The live lane's activity in one process, and the gates of both lanes."""

    def __init__(self, quiet_s: float = QUIET_S, max_wait_s: float = MAX_WAIT_S) -> None:
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self._applying = 0
        self._last_done = float("-inf")
        self._idle = asyncio.Event()
        self._idle.set()
        self.live = _LiveGate(self)
        self.bulk = _BulkGate(self)

    def live_busy(self) -> bool:
        """Whether a live batch is being applied or ended within the last `quiet_s`."""
        return self._applying > 0 or time.monotonic() - self._last_done < self.quiet_s

    def live_started(self) -> None:
        """A live consumer fetched a batch and is applying it."""
        self._applying += 1
        self._idle.clear()

    def live_ended(self) -> None:
        """A live consumer's batch is applied (or failed)."""
        self._applying = max(0, self._applying - 1)
        self._last_done = time.monotonic()
        if self._applying == 0:
            self._idle.set()

    async def give_way(self) -> float:
        """Wait while the live lane is busy, at most `max_wait_s`; the seconds waited."""
        started = time.monotonic()
        deadline = started + self.max_wait_s
        while (now := time.monotonic()) < deadline:
            if self._applying > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), deadline - now)
                continue
            quiet_left = self._last_done + self.quiet_s - now
            if quiet_left <= 0:
                break
            # A live batch fetched meanwhile is waited for on the next round.
            await asyncio.sleep(min(quiet_left, deadline - now))
        return time.monotonic() - started


class _LiveGate:
    def __init__(self, priority: LanePriority) -> None:
        self._priority = priority

    async def before(self) -> None:
        self._priority.live_started()

    def after(self) -> None:
        self._priority.live_ended()


class _BulkGate:
    def __init__(self, priority: LanePriority) -> None:
        self._priority = priority

    async def before(self) -> None:
        await self._priority.give_way()

    def after(self) -> None:
        """Nothing: only the live lane's activity is tracked."""
