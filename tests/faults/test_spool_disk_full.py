"""The intake's spool disk full while the broker is away: refused with 503 and Retry-After,
never a 202 for what was not stored; the relay's cursor writes fail too; all recovers.

The spool sits on a small tmpfs. The broker is paused so that webhooks must go to the
spool; the disk is filled, the broker comes back while the disk is still full (the relay
can publish but not record how far it got), then the disk is freed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fixtures.faultbed import FaultBed, fault_bed, through_fault
from tests.fixtures.leadstream import LeadStream

pytestmark = pytest.mark.integration


async def test_spool_disk_full_refuses_with_retry_after_then_recovers(tmp_path: Path) -> None:
    async def fault(bed: FaultBed, _stream: LeadStream) -> None:
        assert bed.spool_disk is not None
        bed.broker.pause()
        try:
            await asyncio.sleep(2.0)  # webhooks are spooled
            bed.spool_disk.fill()
            await asyncio.sleep(4.0)  # nothing can be stored: refused
        finally:
            bed.broker.resume()
        await asyncio.sleep(3.0)  # the relay publishes but cannot write its cursor
        bed.spool_disk.free()

    with fault_bed("sqlite", tmp_path, spool_disk_bytes=4 * 1024 * 1024) as bed:
        stream, _ = await through_fault(bed, fault, "disk-full")

    assert stream.refusals["503"] > 0, stream.refusals
    assert stream.refusals_without_retry_after == 0
