"""Lane priority: a bulk consumer gives way to live batches, but never for ever."""

from __future__ import annotations

import asyncio

from leadflow.lanes import LanePriority


async def settle() -> None:
    """Let every ready task run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_bulk_goes_at_once_when_the_live_lane_is_idle() -> None:
    priority = LanePriority(quiet_s=60, max_wait_s=60)

    await asyncio.wait_for(priority.bulk.before(), 5)

    assert not priority.live_busy()


async def test_bulk_waits_for_the_live_batch_in_flight() -> None:
    priority = LanePriority(quiet_s=0, max_wait_s=60)
    await priority.live.before()
    bulk = asyncio.create_task(priority.bulk.before())

    await settle()
    waiting = not bulk.done()
    priority.live.after()
    await asyncio.wait_for(bulk, 5)

    assert waiting


async def test_bulk_waits_while_batches_overlap() -> None:
    priority = LanePriority(quiet_s=0, max_wait_s=60)
    await priority.live.before()
    await priority.live.before()  # two live consumers of one service
    bulk = asyncio.create_task(priority.bulk.before())

    priority.live.after()
    await settle()
    waiting = not bulk.done()
    priority.live.after()
    await asyncio.wait_for(bulk, 5)

    assert waiting


async def test_bulk_waits_out_the_quiet_time_after_a_live_batch() -> None:
    priority = LanePriority(quiet_s=60, max_wait_s=60)
    await priority.live.before()
    priority.live.after()
    bulk = asyncio.create_task(priority.bulk.before())

    await settle()

    assert priority.live_busy()
    assert not bulk.done()
    bulk.cancel()


async def test_a_busy_live_lane_never_stops_bulk_for_ever() -> None:
    priority = LanePriority(quiet_s=60, max_wait_s=0.01)
    await priority.live.before()  # never ends

    await asyncio.wait_for(priority.bulk.before(), 5)

    assert priority.live_busy()
