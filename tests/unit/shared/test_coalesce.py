"""Writes submitted while a flush runs go together in the next one; errors reach their callers."""

from __future__ import annotations

import asyncio

import pytest

from leadflow.coalesce import Coalescer


class Store:
    """Flushes that wait until released, so a test decides what is in flight."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_on: int | None = None

    async def flush(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.release.wait()
        if self.fail_on in items:
            raise OSError("the database went away")
        return [i * 10 for i in items]


async def test_items_submitted_during_a_flush_go_together_in_the_next() -> None:
    store = Store()
    coalescer = Coalescer(store.flush)
    first = coalescer.submit(1)
    await asyncio.sleep(0)  # the first flush starts with item 1 alone
    rest = [coalescer.submit(i) for i in (2, 3, 4)]
    store.release.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40]
    assert store.batches == [[1], [2, 3, 4]]


async def test_a_failed_flush_fails_its_own_items_only() -> None:
    store = Store()
    store.fail_on = 1
    coalescer = Coalescer(store.flush)
    first = coalescer.submit(1)
    await asyncio.sleep(0)
    second = coalescer.submit(2)
    store.release.set()
    with pytest.raises(OSError, match="went away"):
        await first
    assert await second == 20


async def test_settle_waits_for_everything_submitted() -> None:
    store = Store()
    coalescer = Coalescer(store.flush)
    futures = [coalescer.submit(i) for i in (1, 2)]
    settling = asyncio.create_task(coalescer.settle())
    await asyncio.sleep(0.01)
    assert not settling.done()
    store.release.set()
    await settling
    assert all(f.done() for f in futures)
