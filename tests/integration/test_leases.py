"""Named leases on real SQLite and PostgreSQL: expiry by the database's clock, renewal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from leadflow import leases
from leadflow.db.engine import session_factory
from leadflow.db.tables import UtcDateTime
from leadflow.db.tables import leases as leases_table

NAME = "outbox:test"


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


async def acquire(
    sessions: async_sessionmaker[AsyncSession], holder: str, ttl: timedelta = leases.LEASE_TTL
) -> bool:
    async with sessions() as session, session.begin():
        return await leases.acquire(session, NAME, holder, ttl)


async def database_now(sessions: async_sessionmaker[AsyncSession]) -> datetime:
    """The database's clock, read back as a stored timestamp is."""
    async with sessions() as session:
        assert session.bind is not None
        now = type_coerce(leases.database_now(session.bind.dialect), UtcDateTime())
        return (await session.execute(select(now))).scalar_one()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 20) -> None:
    """Wait until `check()` holds (a liveness bound, not a measurement)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {limit_s} s")
        await asyncio.sleep(0.05)


async def test_a_lease_expires_by_the_database_clock(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ttl = timedelta(seconds=30)
    assert await acquire(sessions, "host-a:1", ttl)
    async with sessions() as session:
        expiry = await leases.expires_at(session, NAME)
    assert expiry is not None
    left = expiry - await database_now(sessions)
    assert timedelta(seconds=25) < left <= ttl

    assert not await acquire(sessions, "host-b:1")  # live: another holder waits
    assert await acquire(sessions, "host-a:1")  # its holder renews


async def test_a_lease_is_taken_over_once_the_database_clock_passes_its_expiry(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    assert await acquire(sessions, "host-a:1", timedelta(seconds=1))
    assert not await acquire(sessions, "host-b:1")
    async with sessions() as session:
        expiry = await leases.expires_at(session, NAME)
    assert expiry is not None

    async def expired() -> bool:
        return await database_now(sessions) > expiry

    await eventually(expired, "the lease's expiry")
    assert await acquire(sessions, "host-b:1")
    async with sessions() as session, session.begin():
        assert not await leases.renew(session, NAME, "host-a:1")  # taken: no renewal


async def test_a_released_lease_is_free_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    assert await acquire(sessions, "host-a:1")
    async with sessions() as session, session.begin():
        await leases.release(session, NAME, "host-b:1")  # not b's: no effect
    assert not await acquire(sessions, "host-b:1")
    async with sessions() as session, session.begin():
        await leases.release(session, NAME, "host-a:1")
    assert await acquire(sessions, "host-b:1")


@pytest.fixture
async def held(sessions: async_sessionmaker[AsyncSession]) -> timedelta:
    """host-a holds the lease for a short TTL (returned)."""
    ttl = timedelta(seconds=0.6)
    assert await acquire(sessions, "host-a:1", ttl)
    return ttl


async def test_a_kept_lease_outlives_its_ttl_while_the_work_goes_on(
    sessions: async_sessionmaker[AsyncSession], held: timedelta
) -> None:
    async with sessions() as session:
        first_expiry = await leases.expires_at(session, NAME)
    assert first_expiry is not None
    tries: list[bool] = []
    async with leases.kept(sessions, NAME, "host-a:1", held) as kept:
        # Work for well past the TTL, as measured by the database, while another holder
        # keeps trying to take the lease.
        async def outlived() -> bool:
            tries.append(await acquire(sessions, "host-b:1"))
            return await database_now(sessions) > first_expiry + 3 * held

        await eventually(outlived, "three TTLs of work")
        assert not kept.lost.is_set()
    assert tries
    assert not any(tries)

    async def taken_after_the_work() -> bool:
        return await acquire(sessions, "host-b:1")

    await eventually(taken_after_the_work, "a takeover once renewals stopped")


async def test_a_kept_lease_reports_a_takeover(
    sessions: async_sessionmaker[AsyncSession], held: timedelta
) -> None:
    async with leases.kept(sessions, NAME, "host-a:1", held) as kept:
        # As if host-a had been paused past the expiry and host-b had taken over.
        async with sessions() as session, session.begin():
            await session.execute(
                update(leases_table).where(leases_table.c.name == NAME).values(holder="host-b:1")
            )
        await asyncio.wait_for(kept.lost.wait(), 20)
    assert not await acquire(sessions, "host-a:1")
