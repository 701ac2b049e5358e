"""Which errors the event processor retries instead of dead-lettering: the infrastructure's."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
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


class _ConnectError(Exception):
    """What a driver raises while the server cannot take connections."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _chained(outer: Exception, cause: BaseException) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError("connection reset by peer"),
        TimeoutError(),
        OSError(28, "No space left on device"),
        DBAPIError("SELECT 1", {}, _ConnectError("the database system is starting up", "57P03")),
        DBAPIError("SELECT 1", {}, _ConnectError("terminating connection", "57P01")),
        DBAPIError("INSERT", {}, _ConnectError("could not extend file", "53100")),
        DBAPIError("SELECT 1", {}, _ConnectError("connection failure", "08006")),
        DBAPIError("INSERT", {}, _ConnectError("lock not available", "55P03")),
        OperationalError("BEGIN IMMEDIATE", {}, _ConnectError("database is locked")),
        KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]"),
        KafkaTimeoutError(),
        _chained(RuntimeError("handler failed"), ConnectionRefusedError()),
    ],
    ids=repr,
)
def test_infrastructure_failures_are_weather(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad field"),
        KeyError("team"),
        IntegrityError("INSERT", {}, _DriverError("23505")),
        DBAPIError("SELECT", {}, _ConnectError("invalid input syntax", "22P02")),
        MessageSizeTooLargeError(),
        _chained(RuntimeError("handler failed"), ValueError("bad field")),
    ],
    ids=repr,
)
def test_errors_of_the_event_itself_are_not(error: BaseException) -> None:
    assert not is_transient(error)


def test_a_cycle_of_causes_ends() -> None:
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__context__, second.__context__ = second, first
    assert not is_transient(first)
