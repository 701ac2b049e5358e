"""Connections to PostgreSQL reset, refused, slowed down and blackholed through a TCP proxy.

The services reach a private PostgreSQL server only through the proxy; the server itself
keeps running. After each fault every accepted lead is routed exactly once, nothing is
dead-lettered, and every service is ready again within 10 s of the fault's end.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.faultbed import FaultBed, through_fault
from tests.fixtures.faultproxy import FaultProxy
from tests.fixtures.leadstream import LeadStream

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _proxy(bed: FaultBed) -> FaultProxy:
    assert bed.pg_proxy is not None
    return bed.pg_proxy


async def test_connections_reset_then_refused(pg_bed: FaultBed) -> None:
    async def fault(bed: FaultBed, _stream: LeadStream) -> None:
        proxy = _proxy(bed)
        before = proxy.connections_total
        for _ in range(3):  # a server that drops its sessions now and then
            proxy.reset_once()
            await asyncio.sleep(1.0)
        # The sessions reset were the services': they came back through the proxy.
        assert proxy.connections_total > before
        proxy.reset()  # then refuses every connection for a while
        await asyncio.sleep(5.0)
        proxy.pass_through()

    await through_fault(pg_bed, fault, "pg-reset")


async def test_connections_delayed(pg_bed: FaultBed) -> None:
    async def fault(bed: FaultBed, _stream: LeadStream) -> None:
        _proxy(bed).delay(0.2)  # every packet, both ways
        await asyncio.sleep(6.0)
        _proxy(bed).pass_through()

    await through_fault(pg_bed, fault, "pg-delay")


async def test_connections_blackholed(pg_bed: FaultBed) -> None:
    async def fault(bed: FaultBed, _stream: LeadStream) -> None:
        _proxy(bed).blackhole()  # a partition: nothing gets through, nothing is refused
        await asyncio.sleep(6.0)
        _proxy(bed).pass_through()

    await through_fault(pg_bed, fault, "pg-blackhole")
