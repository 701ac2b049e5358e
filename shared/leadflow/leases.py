"""Named leases in the database: one holder at a time for a job that must not run twice.

An outbox relay or a notification dispatcher holds its lease while it works, so that two
instances of a service never publish the same rows at once — which would duplicate them
and, worse, could reorder one person's events. A holder that dies loses its lease when it
expires; the next instance then takes over and resends at most what was in flight.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.db.tables import leases

LEASE_TTL = timedelta(seconds=30)


def new_holder() -> str:
    """An identity unique to this process and object, readable in the table."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def acquire(
    session: AsyncSession, name: str, holder: str, now: datetime, ttl: timedelta = LEASE_TTL
) -> bool:
    """Take or renew the lease `name` for `holder`; False while someone else holds it."""
    renewed = await session.execute(
        update(leases)
        .where(leases.c.name == name, or_(leases.c.holder == holder, leases.c.expires_at < now))
        .values(holder=holder, expires_at=now + ttl)
    )
    if renewed.rowcount == 1:  # type: ignore[attr-defined]
        return True
    dialect = session.bind.dialect.name if session.bind is not None else ""
    module = postgresql if dialect == "postgresql" else sqlite
    created = await session.execute(
        module.insert(leases)
        .values(name=name, holder=holder, expires_at=now + ttl)
        .on_conflict_do_nothing()
    )
    return bool(created.rowcount == 1)  # type: ignore[attr-defined]


async def release(session: AsyncSession, name: str, holder: str, now: datetime) -> None:
    """Give the lease up now (if `holder` has it), so another instance can take over."""
    await session.execute(
        update(leases)
        .where(leases.c.name == name, leases.c.holder == holder)
        .values(expires_at=now)
    )
