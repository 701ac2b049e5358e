"""Long-running background work that restarts itself: one supervisor per process.

A relay, a dispatcher, a timer loop or a consumer is a coroutine that should run for as
long as the process does. If one raises, the supervisor logs the traceback, counts the
restart (`leadflow_task_restarts_total{service,task}`), waits with a capped, doubling
backoff and starts it again. A task that has failed `failing_after` times in a row is
reported by `failing()` (and so by `/readyz`) until a run of it stays up for
`healthy_after_s` (5 s) or says it succeeded (`Supervisor.ok(name)`), so that an operator sees
which part is stuck while it retries by itself.

A task that returns normally is finished and is not restarted; cancelling the
supervisor cancels every task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter

from leadflow.faults import describe

log = logging.getLogger(__name__)

Work = Callable[[], Awaitable[None]]


_RESTARTS = Counter(
    "leadflow_task_restarts_total",
    "Background tasks restarted after an error, by service and task.",
    ["service", "task"],
)


@dataclass
class _Supervised:
    name: str
    work: Work
    failures: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    """Runs named background tasks, restarting each after an error with capped backoff."""

    def __init__(
        self,
        service: str,
        *,
        failing_after: int = 3,
        backoff_min_s: float = 0.2,
        backoff_max_s: float = 10.0,
        healthy_after_s: float = 5.0,
    ) -> None:
        self.service = service
        self._failing_after = failing_after
        self._backoff_min_s = backoff_min_s
        self._backoff_max_s = backoff_max_s
        self._healthy_after_s = healthy_after_s
        self._tasks: dict[str, _Supervised] = {}

    def spawn(self, name: str, work: Work) -> None:
        """Run `work()` in the background under `name`, restarting it whenever it raises."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        supervised = _Supervised(name, work)
        supervised.task = asyncio.create_task(self._keep(supervised), name=name)
        self._tasks[name] = supervised

    def ok(self, name: str) -> None:
        """Note that `name` just did its work successfully (it is no longer failing)."""
        supervised = self._tasks.get(name)
        if supervised is not None:
            supervised.failures = 0
            supervised.last_error = None

    def failing(self) -> dict[str, str]:
        """Tasks that keep failing, with their last error (empty when all is well)."""
        return {
            s.name: s.last_error or "failing"
            for s in self._tasks.values()
            if s.failures >= self._failing_after
        }

    def running(self, name: str) -> bool:
        """Whether `name` is supervised and has not finished."""
        supervised = self._tasks.get(name)
        return supervised is not None and supervised.task is not None and not supervised.task.done()

    async def stop(self) -> None:
        """Cancel every task and wait for them to end."""
        tasks = [s.task for s in self._tasks.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _keep(self, supervised: _Supervised) -> None:
        loop = asyncio.get_running_loop()
        delay = self._backoff_min_s
        while True:
            started = loop.time()
            # A run that stays up for `healthy_after_s` has recovered: forget the failures.
            settle = loop.call_later(self._healthy_after_s, self.ok, supervised.name)
            try:
                await supervised.work()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if loop.time() - started >= self._healthy_after_s:
                    delay = self._backoff_min_s
                supervised.failures += 1
                supervised.last_error = describe(exc)
                _RESTARTS.labels(self.service, supervised.name).inc()
                log.exception(
                    "background task failed; restarting it",
                    extra={
                        "service": self.service,
                        "task": supervised.name,
                        "failures": supervised.failures,
                        "retry_in_s": round(delay, 3),
                    },
                )
            finally:
                settle.cancel()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max_s)
