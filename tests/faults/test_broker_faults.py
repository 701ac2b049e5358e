"""The broker missing at start, paused mid-stream, and its connections reset or blackholed.

The broker is reached only through a fault proxy (it advertises the proxy's address), so
the services' every connection to it, bootstrap and partition leaders alike, can be
broken. After each fault every accepted lead is routed exactly once, nothing is
dead-lettered, and every service is ready again within 10 s of the fault's end.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fixtures.audit import assert_ready_again
from tests.fixtures.faultbed import FaultBed, fault_bed, through_fault
from tests.fixtures.leadstream import LeadStream

pytestmark = pytest.mark.integration


async def test_intake_starts_without_a_broker_and_relays_when_it_arrives(
    tmp_path: Path,
) -> None:
    with fault_bed("sqlite", tmp_path, start=False, broker=False) as bed:
        bed.stack.start(wait=False)
        bed.stack.wait_ready("intake")  # answers, and keeps what it accepts, with no broker
        stream = LeadStream(bed.stack, 4.0, "no-broker").start()
        try:
            stream.wait_accepted(12)
            bed.broker.start()
            assert_ready_again(bed.stack)
            await asyncio.sleep(3.0)
        finally:
            stream.stop()
        assert stream.unaccepted == []
        result = await bed.audit(stream.accepted)
    result.assert_kept()


async def test_broker_paused_mid_stream(bed: FaultBed) -> None:
    async def fault(bed: FaultBed, _stream: LeadStream) -> None:
        bed.broker.pause()
        try:
            await asyncio.sleep(8.0)
        finally:
            bed.broker.resume()

    await through_fault(bed, fault, f"broker-paused-{bed.database}")


async def test_broker_connections_reset_then_blackholed(bed: FaultBed) -> None:
    async def fault(bed: FaultBed, _stream: LeadStream) -> None:
        proxy = bed.broker.proxy
        before = proxy.connections_total
        for _ in range(3):
            proxy.reset_once()
            await asyncio.sleep(1.0)
        # The connections reset were the services': they came back through the proxy.
        assert proxy.connections_total > before
        proxy.blackhole()  # a partition: the broker runs, nothing gets through
        await asyncio.sleep(6.0)
        proxy.pass_through()

    await through_fault(bed, fault, f"broker-reset-{bed.database}")
