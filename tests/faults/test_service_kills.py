"""Each service SIGKILLed mid-batch (no shutdown, no flush, no commit), then restarted.

Leads arrive at a steady rate while the intake, scoring, the router and the SLA monitor
are killed one after the other, each half a second into a burst of 20 leads. Each is
started again at once, and once its process answers again every service must be ready
within 10 s. A sender whose request died with the intake retries it with the same
delivery id.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.audit import assert_ready_again
from tests.fixtures.faultbed import FaultBed, restart, through_fault
from tests.fixtures.leadstream import LeadStream
from tests.fixtures.stack import SERVICES

pytestmark = pytest.mark.integration


async def test_each_service_killed_mid_batch_then_restarted(bed: FaultBed) -> None:
    async def fault(bed: FaultBed, stream: LeadStream) -> None:
        for name in SERVICES:
            stream.burst(20)  # a batch in flight: posted, being scored, routed, timed
            await asyncio.sleep(0.5)
            bed.stack.kill(name)
            await asyncio.sleep(1.0)  # leads keep coming while it is gone
            restart(bed.stack, name)
            assert_ready_again(bed.stack)

    await through_fault(bed, fault, f"killed-{bed.database}", rate=8.0, before=16)
