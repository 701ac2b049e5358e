"""Weather or poison: which errors say the infrastructure failed, not the event.

An event that fails because PostgreSQL restarts, SQLite is locked or the broker is away
will succeed later, unchanged: it must be retried for as long as it takes, never
dead-lettered. `is_transient` recognises those errors whatever layer raised them —
SQLAlchemy's wrappers, the drivers underneath (asyncpg, aiosqlite), the socket layer,
aiokafka — by walking the exception's chain of causes.
"""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError, KafkaError, MessageSizeTooLargeError
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# SQLSTATE classes and codes that mean "not now" rather than "never":
# 08 connection exceptions, 53 insufficient resources (disk full, out of memory, too many
# connections), 57P operator intervention (admin shutdown, crash shutdown, cannot connect
# now: "the database system is starting up"), 58 system errors (I/O), 40001/40P01 a
# serialization failure or deadlock victim, 55P03 a lock not available, 57014 a statement
# cancelled by a timeout.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P", "58")
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "57014"}
# Driver messages for the same conditions where no SQLSTATE is attached (SQLite has none).
_TRANSIENT_MESSAGES = (
    "database is locked",
    "database table is locked",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "connection is closed",
    "connection was closed",
    "server closed the connection",
    "terminating connection",
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
)
_MAX_CHAIN = 10


class InfrastructureUnavailable(Exception):
    """The database or the broker cannot be used right now; the work is to be retried."""


def is_transient(exc: BaseException) -> bool:
    """Whether doing the same work again later may succeed (the event itself is not at fault)."""
    pending: list[BaseException] = [exc]
    seen: list[BaseException] = []
    while pending and len(seen) < _MAX_CHAIN:
        current = pending.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        if _transient_alone(current):
            return True
        # SQLAlchemy keeps the driver's error as `orig`; Python chains causes.
        pending += [
            e
            for e in (getattr(current, "orig", None), current.__cause__, current.__context__)
            if isinstance(e, BaseException)
        ]
    return False


def is_unreachable(exc: BaseException) -> bool:
    """Whether the database or the broker could not be reached at all (refused, timed out,
    unknown host, not accepting connections), rather than failing the work it was given."""
    pending: list[BaseException] = [exc]
    seen: list[BaseException] = []
    while pending and len(seen) < _MAX_CHAIN:
        current = pending.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, OSError | TimeoutError | KafkaConnectionError):
            return True
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(("08", "57P03")):
            return True
        if "unable to open database file" in str(current).lower():
            return True
        pending += [
            e
            for e in (getattr(current, "orig", None), current.__cause__, current.__context__)
            if isinstance(e, BaseException)
        ]
    return False


def _transient_alone(exc: BaseException) -> bool:
    if isinstance(exc, InfrastructureUnavailable | OSError | TimeoutError | PoolTimeoutError):
        return True
    if isinstance(exc, DisconnectionError | OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, MessageSizeTooLargeError):
        return False  # the same record will never fit
    if isinstance(exc, KafkaError):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(sqlstate, str) and (
        sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES)
    ):
        return True
    message = str(exc).lower()
    return any(fragment in message for fragment in _TRANSIENT_MESSAGES)


def describe(exc: BaseException) -> str:
    """A short, single-line description of an error, for readiness and logs (no data)."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
