"""PostgreSQL stopped for 15 s in the middle of a lead stream: nothing lost, duplicated or
dead-lettered, and every service ready again within 10 s of the server's return.

A private PostgreSQL server (initdb/pg_ctl) is stopped with `pg_ctl stop -m fast` while
leads arrive at a steady rate, left down for 15 s, and started again on the same port
and data directory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fixtures.audit import assert_ready_again
from tests.fixtures.faultbed import fault_bed
from tests.fixtures.leadstream import LeadStream

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

RATE = 4.0  # leads a second
OUTAGE_S = 15.0


async def test_postgres_stopped_for_15_s_mid_stream_loses_nothing(tmp_path: Path) -> None:
    with fault_bed("postgres", tmp_path) as bed:
        assert bed.pg is not None
        stream = LeadStream(bed.stack, RATE, "pg-outage").start()
        try:
            stream.wait_accepted(12)
            bed.pg.stop()
            await asyncio.sleep(OUTAGE_S)
            bed.pg.start()
            assert_ready_again(bed.stack)
            await asyncio.sleep(3)  # leads keep coming after the return
        finally:
            stream.stop()
        result = await bed.audit(stream.accepted)

    assert stream.unaccepted == []
    assert len(stream.accepted) >= RATE * OUTAGE_S
    result.assert_kept()
