"""A short chaos run on PostgreSQL with a fixed seed (what `make chaos` does for minutes).

Seed 10 draws: the router killed, PostgreSQL stopped for 13 s, the broker paused, scoring
killed, and the spool's disk full while the broker is away. Nothing may be lost,
duplicated or dead-lettered, and every service must be ready within 10 s of each fault.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.chaos import run_chaos
from tests.fixtures.faultbed import FaultBed, fault_bed

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

SEED = 10


@pytest.fixture
def chaos_bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultBed]:
    """PostgreSQL behind a proxy, the broker behind a proxy, the spool on a small disk."""
    tmp = tmp_path_factory.mktemp("chaos")
    with fault_bed("postgres", tmp, spool_disk_bytes=4 * 1024 * 1024) as bed:
        yield bed


async def test_chaos_with_a_fixed_seed_loses_nothing(chaos_bed: FaultBed) -> None:
    report = await run_chaos(chaos_bed, seed=SEED, seconds=45, rate=4)

    assert not report.failed, report.render()
    assert not report.slow(), report.render()
    assert report.total.accepted > 100
