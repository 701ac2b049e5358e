"""Statement builders shared by every repository, so dialect differences live in one place."""

from __future__ import annotations

from collections.abc import Sequence

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


def upsert(session: AsyncSession, table: Table, key: Sequence[str]) -> Insert:
    """An INSERT into `table` that replaces the other columns of a row whose `key` columns
    are already there.

    Give it many rows as the parameters of `session.execute` (one statement); the rows of
    one call must have distinct keys.
    """
    dialect = session.bind.dialect.name if session.bind is not None else ""
    statement = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    replaced = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in key}
    return statement.on_conflict_do_update(index_elements=list(key), set_=replaced)
