"""The near horizon: sleep until the next due timer, then fire everything due from the database.

The rows are the truth. The process only keeps the due times of timers due within the
next `horizon_s` (at most `horizon_max` of them) in a heap, to know when to wake up; it
re-reads the horizon when it runs out, and takes hints from the timers its own consumer
opens. Firing always claims due rows from the database, so timers opened by another
instance, or missed while this one was down, fire too — and a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from leadflow.faults import is_transient
from leadflow.processing import Clock, utcnow
from leadflow_sla.metrics import HORIZON_TIMERS

log = logging.getLogger(__name__)

LoadHorizon = Callable[[datetime, int], Awaitable[list[datetime]]]
FireDue = Callable[[datetime], Awaitable[int]]

RETRY_S = 1.0
MIN_SLEEP_S = 0.05


class TimerScheduler:
    """Wakes up when the next timer is due and fires every due timer."""

    def __init__(
        self,
        *,
        horizon_s: float = 60.0,
        horizon_max: int = 10_000,
        clock: Clock = utcnow,
    ) -> None:
        self._horizon = timedelta(seconds=horizon_s)
        self._horizon_max = horizon_max
        self._clock = clock
        self._heap: list[datetime] = []
        self._staged: list[datetime] = []
        self._reload_at: datetime | None = None
        self._wake = asyncio.Event()
        self.loaded = False

    def hint(self, due_at: datetime) -> None:
        """A timer due at `due_at` is being opened (takes effect at `flush_hints`)."""
        self._staged.append(due_at)

    def flush_hints(self) -> None:
        """The transaction that opened the hinted timers is over: wake up for them if needed."""
        staged, self._staged = self._staged, []
        if self._reload_at is None:
            return
        for due_at in staged:
            if due_at <= self._reload_at:
                heapq.heappush(self._heap, due_at)
        if staged:
            self._wake.set()

    @property
    def in_memory(self) -> int:
        """How many due times the heap holds."""
        return len(self._heap)

    async def load(self, load_horizon: LoadHorizon) -> None:
        """Read the due times of the near horizon from the database."""
        now = self._clock()
        until = now + self._horizon
        due = await load_horizon(until, self._horizon_max)
        if len(due) >= self._horizon_max:
            until = due[-1]  # the horizon is full: come back when its last timer is due
        self._heap = list(due)
        heapq.heapify(self._heap)
        self._reload_at = until
        self.loaded = True
        HORIZON_TIMERS.set(len(self._heap))

    async def step(self, load_horizon: LoadHorizon, fire_due: FireDue) -> int:
        """Load the horizon if it ran out, fire what is due; returns how many timers fired."""
        now = self._clock()
        if self._reload_at is None or now >= self._reload_at:
            await self.load(load_horizon)
            now = self._clock()
        if not self._heap or self._heap[0] > now:
            return 0
        while self._heap and self._heap[0] <= now:
            heapq.heappop(self._heap)
        HORIZON_TIMERS.set(len(self._heap))
        fired = 0
        while True:
            batch = await fire_due(now)
            fired += batch
            if batch == 0:
                return fired

    def seconds_to_next(self) -> float:
        """How long to sleep: until the next due time or the end of the horizon."""
        if self._reload_at is None:
            return 0.0
        wake_at = min(self._heap[0], self._reload_at) if self._heap else self._reload_at
        return max(0.0, (wake_at - self._clock()).total_seconds())

    async def run(self, load_horizon: LoadHorizon, fire_due: FireDue) -> None:
        """Fire timers forever; survives database outages (due timers fire when it is back)."""
        while True:
            try:
                fired = await self.step(load_horizon, fire_due)
            except Exception as exc:
                # Anything else is a bug: the supervisor restarts the loop, and the timers
                # are rows in the database, so nothing is lost meanwhile.
                if not is_transient(exc):
                    self._reload_at = None
                    raise
                log.warning("database unavailable; timers will fire when it is back")
                self._reload_at = None
                await asyncio.sleep(RETRY_S)
                continue
            sleep_s = self.seconds_to_next()
            if fired == 0 and sleep_s == 0:
                sleep_s = MIN_SLEEP_S  # rows still locked by another instance: do not spin
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep_s)
            self._wake.clear()
