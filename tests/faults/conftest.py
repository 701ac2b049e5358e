"""The fault suite's beds: one per module and database, torn down by pid afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.faultbed import FaultBed, fault_bed

DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=DATABASES)
def bed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultBed]:
    """Broker, database and the four services, on SQLite and on PostgreSQL."""
    with fault_bed(request.param, tmp_path_factory.mktemp(f"bed-{request.param}")) as bed:
        yield bed


@pytest.fixture(scope="module")
def pg_bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultBed]:
    """Broker, a private PostgreSQL server behind a fault proxy, and the four services."""
    with fault_bed("postgres", tmp_path_factory.mktemp("bed-postgres")) as bed:
        yield bed
