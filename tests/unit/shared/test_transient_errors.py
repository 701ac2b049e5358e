"""Which database errors the event processor retries instead of dead-lettering."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from leadflow.processing import is_transient


class _DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (OperationalError("SELECT 1", {}, _DriverError(None)), True),
        (DBAPIError("UPDATE", {}, _DriverError("40P01")), True),
        (DBAPIError("UPDATE", {}, _DriverError("40001")), True),
        (DBAPIError("UPDATE", {}, _DriverError("22P02")), False),
        (IntegrityError("INSERT", {}, _DriverError("23505")), False),
    ],
)
def test_deadlock_and_serialization_victims_are_retried(error: DBAPIError, transient: bool) -> None:
    assert is_transient(error) is transient
