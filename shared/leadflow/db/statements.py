"""Statement builders shared by every repository, so dialect differences live in one place."""

from __future__ import annotations

from sqlalchemy import Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_new(session: AsyncSession, table: Table) -> Insert:
    """An INSERT into `table` that skips rows whose unique key is already there.

    Give it one row with `.values()`, or many as the parameters of `session.execute` (one
    statement, executed as multi-row VALUES); add `.returning(...)` to learn which rows
    were new (PostgreSQL and SQLite both return only the rows inserted).
    """
    dialect = session.bind.dialect.name if session.bind is not None else ""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()
