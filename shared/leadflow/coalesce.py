"""Many small concurrent writes made as few transactions: one flush at a time takes all waiting.

Recording each notification's outcome in its own transaction costs a commit (an fsync)
per send, several times the send itself on a local receiver. Callers `submit` an item and
await its result; while one flush runs, the next items wait and go together in the next.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _retrieve(future: asyncio.Future[R]) -> None:
    # A submitter cancelled before awaiting must not leave "exception never retrieved".
    if not future.cancelled():
        future.exception()


class Coalescer(Generic[T, R]):
    """Passes submitted items to `flush` in batches, one batch at a time, in order."""

    def __init__(self, flush: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        self._flush = flush
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue `item` for the next flush; the future holds its result or the flush's error."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return future

    async def settle(self) -> None:
        """Wait until everything submitted so far has been flushed (or has failed)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await self._flush([item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except asyncio.CancelledError:
                for _, future in batch + self._waiting:
                    future.cancel()
                self._waiting = []
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
