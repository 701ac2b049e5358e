"""Async engines: SQLite (WAL, synchronous=FULL) by default, PostgreSQL via asyncpg."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine


def create_engine(
    url: str,
    *,
    connect_timeout_s: float = 10.0,
    statement_timeout_s: float | None = 60.0,
    **kwargs: Any,
) -> AsyncEngine:
    """An engine for `url`; SQLite files get their folder, WAL and immediate write locks.

    On PostgreSQL, connecting and each statement are bounded (`connect_timeout_s`,
    `statement_timeout_s`): a server that vanished without closing its connections is
    then an error to retry, not a wait that never ends; pooled connections are checked
    before use, so a restarted server costs one failed ping, not a failed transaction.
    Errors never quote a statement's parameters (`hide_parameters`): they are a person's
    email, name or company, and errors end up in logs and dead-letter headers.
    """
    parsed = make_url(url)
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        if parsed.get_driver_name() == "asyncpg":
            connect_args = {"timeout": connect_timeout_s, "command_timeout": statement_timeout_s}
            kwargs["connect_args"] = {**connect_args, **kwargs.get("connect_args", {})}
        engine = _create_async_engine(url, **kwargs)
        _count_statements(engine)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = _create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
    _configure_sqlite(engine)
    _count_statements(engine)
    return engine


@cache
def _statements() -> Counter:
    return Counter(
        "leadflow_sql_statements_total",
        "SQL statements this process sent to its database (a many-row statement counts once).",
    )


def _count_statements(engine: AsyncEngine) -> None:
    # Statements per event is what set-based consumers are judged by: count them where
    # they are sent, for the metrics and for `make bench`.
    counter = _statements()

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _on_execute(*_args: Any) -> None:
        counter.inc()


def _configure_sqlite(engine: AsyncEngine) -> None:
    # Several processes share one SQLite file: WAL lets readers run beside the writer,
    # synchronous=FULL makes a commit durable, and BEGIN IMMEDIATE takes the write lock
    # up front so two writers queue on busy_timeout instead of deadlocking on upgrade.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded values after commit (the caller owns the transaction)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def is_postgres(engine: AsyncEngine) -> bool:
    """Whether `engine` talks to PostgreSQL (row locks and SKIP LOCKED are available)."""
    return engine.dialect.name == "postgresql"
