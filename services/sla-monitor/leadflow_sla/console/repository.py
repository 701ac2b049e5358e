"""Every SQL statement of the console: its sign-ins in `console_sessions`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_sla.tables import console_sessions


@dataclass(frozen=True)
class StoredSession:
    """A sign-in as the table holds it: the credential still sealed."""

    id_hash: str
    principal: dict[str, Any]
    credential: bytes
    csrf: str
    flash: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ends_at: datetime | None


async def insert_session(session: AsyncSession, stored: StoredSession) -> None:
    """Store a new sign-in."""
    await session.execute(
        insert(console_sessions).values(
            id_hash=stored.id_hash,
            principal=stored.principal,
            credential=stored.credential,
            csrf=stored.csrf,
            flash=stored.flash,
            created_at=stored.created_at,
            last_seen_at=stored.last_seen_at,
            expires_at=stored.expires_at,
            ends_at=stored.ends_at,
        )
    )


async def find_session(session: AsyncSession, id_hash: str) -> StoredSession | None:
    """The sign-in stored under `id_hash`, expired or not."""
    c = console_sessions.c
    row = (
        await session.execute(
            select(
                c.id_hash,
                c.principal,
                c.credential,
                c.csrf,
                c.flash,
                c.created_at,
                c.last_seen_at,
                c.expires_at,
                c.ends_at,
            ).where(c.id_hash == id_hash)
        )
    ).one_or_none()
    if row is None:
        return None
    return StoredSession(
        id_hash=row.id_hash,
        principal=dict(row.principal),
        credential=bytes(row.credential),
        csrf=row.csrf,
        flash=row.flash,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        ends_at=row.ends_at,
    )


async def session_expiry(session: AsyncSession, id_hash: str) -> datetime | None:
    """When the sign-in stored under `id_hash` expires, or None when there is none."""
    c = console_sessions.c
    query = select(c.expires_at).where(c.id_hash == id_hash)
    expires_at: datetime | None = (await session.execute(query)).scalar_one_or_none()
    return expires_at


async def touch_session(
    session: AsyncSession, id_hash: str, last_seen_at: datetime, expires_at: datetime
) -> None:
    """Record a sign-in's latest request and push its expiry back."""
    c = console_sessions.c
    await session.execute(
        update(console_sessions)
        .where(c.id_hash == id_hash)
        .values(last_seen_at=last_seen_at, expires_at=expires_at)
    )


async def set_flash(session: AsyncSession, id_hash: str, flash: str | None) -> None:
    """Keep (or, with None, forget) the message the sign-in's next page shows."""
    c = console_sessions.c
    await session.execute(update(console_sessions).where(c.id_hash == id_hash).values(flash=flash))


async def delete_session(session: AsyncSession, id_hash: str) -> None:
    """Forget a sign-in (signed out, or found expired)."""
    await session.execute(delete(console_sessions).where(console_sessions.c.id_hash == id_hash))


async def prune_expired_sessions(session: AsyncSession, before: datetime, limit: int) -> int:
    """Delete up to `limit` sign-ins that expired before `before` (a retention rule)."""
    c = console_sessions.c
    oldest = select(c.id_hash).where(c.expires_at < before).limit(limit)
    result = await session.execute(delete(console_sessions).where(c.id_hash.in_(oldest)))
    return int(getattr(result, "rowcount", 0) or 0)
