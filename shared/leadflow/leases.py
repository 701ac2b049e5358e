"""Named leases in the database: one holder at a time for a job that must not run twice.

An outbox relay holds its lease while it works, so that two instances of a service never
publish the same rows at once — which would duplicate them and, worse, could reorder one
person's events. A holder that dies loses its lease when it expires; the next instance
then takes over and resends at most what was in flight.

Expiry is judged by the database's clock alone (`database_now`): every instance compares
against the same clock, so a host whose own clock runs fast cannot take a live lease, and
one whose clock runs slow cannot write a lease that is already expired for the others.
While a holder works, `kept` renews the lease in the background, so a batch that takes
longer than the TTL is not taken over halfway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Dialect, String, func, literal, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.expression import ColumnElement

from leadflow.db.statements import insert_new
from leadflow.db.tables import leases

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(seconds=30)

# SQLite has no timestamp type: SQLAlchemy stores a UTC timestamp as the text
# `YYYY-MM-DD HH:MM:SS.ffffff`, and text comparison orders those correctly. SQLite's own
# clock gives milliseconds (`%f` = `SS.SSS`); three zeros make it the same format, so the
# database's time compares with stored values and reads back as a datetime.
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f"


def new_holder() -> str:
    """An identity unique to this process and object, readable in the table."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def database_now(dialect: Dialect) -> ColumnElement[Any]:
    """The database's current time as an SQL expression, comparable with stored timestamps."""
    return database_time_after(dialect, timedelta(0))


def database_time_after(dialect: Dialect, delay: timedelta) -> ColumnElement[Any]:
    """The database's time `delay` from now, as an SQL expression to store or compare."""
    if dialect.name == "postgresql":
        # statement_timestamp(), not now(): a claim made late in a long transaction must
        # not be dated from the transaction's start.
        return func.statement_timestamp() + literal(delay)
    seconds = f"{delay.total_seconds():+.6f} seconds"
    return func.strftime(_SQLITE_FORMAT, "now", seconds, type_=String).concat("000")


def _dialect(session: AsyncSession) -> Dialect:
    if session.bind is None:
        raise RuntimeError("a lease needs a session bound to an engine.")
    return session.bind.dialect


async def acquire(
    session: AsyncSession, name: str, holder: str, ttl: timedelta = LEASE_TTL
) -> bool:
    """Take or renew the lease `name` for `holder`; False while someone else holds it."""
    dialect = _dialect(session)
    until = database_time_after(dialect, ttl)
    renewed = await session.execute(
        update(leases)
        .where(
            leases.c.name == name,
            or_(leases.c.holder == holder, leases.c.expires_at < database_now(dialect)),
        )
        .values(holder=holder, expires_at=until)
    )
    if renewed.rowcount == 1:  # type: ignore[attr-defined]
        return True
    created = await session.execute(
        insert_new(session, leases).values(name=name, holder=holder, expires_at=until)
    )
    return bool(created.rowcount == 1)  # type: ignore[attr-defined]


async def renew(session: AsyncSession, name: str, holder: str, ttl: timedelta = LEASE_TTL) -> bool:
    """Push the expiry of `holder`'s lease `ttl` ahead; False if another holder took it."""
    # The holder column changes only when someone takes the lease, so a lease still
    # naming `holder` has not been taken — even if it expired a moment ago.
    result = await session.execute(
        update(leases)
        .where(leases.c.name == name, leases.c.holder == holder)
        .values(expires_at=database_time_after(_dialect(session), ttl))
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def release(session: AsyncSession, name: str, holder: str) -> None:
    """Give the lease up now (if `holder` has it), so another instance can take over."""
    await session.execute(
        update(leases)
        .where(leases.c.name == name, leases.c.holder == holder)
        .values(expires_at=database_time_after(_dialect(session), -timedelta(seconds=1)))
    )


async def expires_at(session: AsyncSession, name: str) -> datetime | None:
    """When the lease `name` expires (UTC), or None if it was never taken."""
    row = (await session.execute(leases.select().where(leases.c.name == name))).first()
    return None if row is None else row.expires_at


class Kept:
    """A lease being renewed in the background; `lost` is set if another holder took it."""

    def __init__(self) -> None:
        self.lost = asyncio.Event()


@contextlib.asynccontextmanager
async def heartbeat(
    beat: Callable[[], Awaitable[bool]], period_s: float, name: str
) -> AsyncIterator[None]:
    """Call `beat()` every `period_s` while the body runs, until it returns False.

    A beat that raises is logged and tried again at the next period: what it renews
    expires by itself if the database stays away, and the work checks before it acts.
    """

    async def loop() -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                if not await beat():
                    return
            except Exception:
                log.warning("renewal failed; retrying", extra={"renewing": name}, exc_info=True)

    task = asyncio.create_task(loop(), name=f"heartbeat-{name}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def kept(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    holder: str,
    ttl: timedelta = LEASE_TTL,
) -> AsyncIterator[Kept]:
    """Renew `holder`'s lease every third of `ttl` while the body runs (the lease is held)."""
    state = Kept()

    async def beat() -> bool:
        async with sessions() as session, session.begin():
            if await renew(session, name, holder, ttl):
                return True
        state.lost.set()
        log.warning("lease taken by another holder", extra={"lease": name})
        return False

    async with heartbeat(beat, ttl.total_seconds() / 3, f"lease-{name}"):
        yield state


__all__ = [
    "LEASE_TTL",
    "Kept",
    "acquire",
    "database_now",
    "database_time_after",
    "expires_at",
    "heartbeat",
    "kept",
    "new_holder",
    "release",
    "renew",
]
