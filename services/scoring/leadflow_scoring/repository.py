"""Every SQL statement of the scoring service."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Insert, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_scoring.identity import Identifier
from leadflow_scoring.profile import Touch
from leadflow_scoring.tables import lead_identifiers, lead_profiles, lead_touches


async def claim_identifiers(
    session: AsyncSession, identifiers: Sequence[Identifier], event_id: str, now: datetime
) -> dict[str, str | None]:
    """Create missing identifier rows and lock all of them, in key order; returns their owners.

    On PostgreSQL a concurrent transaction claiming the same identifier waits here until
    this one commits, so two events of one person are never resolved at the same time.
    """
    owners: dict[str, str | None] = {}
    for identifier in sorted(identifiers, key=lambda i: i.key):
        values = {
            "identifier": identifier.key,
            "kind": identifier.kind,
            "lead_key": None,
            "first_event_id": event_id,
            "created_at": now,
        }
        await session.execute(_insert_ignoring_conflict(session, values))
        row = (
            await session.execute(
                select(lead_identifiers.c.lead_key)
                .where(lead_identifiers.c.identifier == identifier.key)
                .with_for_update()
            )
        ).one()
        owners[identifier.key] = row.lead_key
    return owners


def _insert_ignoring_conflict(session: AsyncSession, values: dict[str, Any]) -> Insert:
    dialect = session.bind.dialect.name if session.bind is not None else ""
    if dialect == "postgresql":
        return postgresql.insert(lead_identifiers).values(values).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(lead_identifiers).values(values).on_conflict_do_nothing()
    return insert(lead_identifiers).values(values)  # pragma: no cover - unsupported database


async def attach_identifiers(session: AsyncSession, keys: Collection[str], lead_key: str) -> None:
    """Point identifiers (already claimed by this transaction) at a profile."""
    await session.execute(
        update(lead_identifiers)
        .where(lead_identifiers.c.identifier.in_(list(keys)))
        .values(lead_key=lead_key)
    )


async def roots(session: AsyncSession, lead_keys: Collection[str]) -> set[str]:
    """The live profiles behind some profile keys (following merges); unknown keys are left out."""
    rows = await session.execute(
        select(lead_profiles.c.lead_key, lead_profiles.c.merged_into).where(
            lead_profiles.c.lead_key.in_(list(lead_keys))
        )
    )
    return {row.merged_into or row.lead_key for row in rows}


async def lock_profile(session: AsyncSession, lead_key: str) -> dict[str, Any] | None:
    """A profile row, locked (on PostgreSQL) until the transaction ends."""
    row = (
        await session.execute(
            select(lead_profiles).where(lead_profiles.c.lead_key == lead_key).with_for_update()
        )
    ).first()
    return dict(row._mapping) if row is not None else None


async def merge_profiles(
    session: AsyncSession, survivor: str, absorbed: Collection[str], now: datetime
) -> None:
    """Move the absorbed profiles' touches to the survivor and mark them merged into it.

    The absorbed aggregates are dropped: the caller merges them (loaded with the locked rows).
    """
    absorbed = list(absorbed)
    await session.execute(
        update(lead_touches).where(lead_touches.c.lead_key.in_(absorbed)).values(lead_key=survivor)
    )
    await session.execute(
        update(lead_profiles)
        .where(
            or_(
                lead_profiles.c.lead_key.in_(absorbed),
                lead_profiles.c.merged_into.in_(absorbed),
            )
        )
        .values(merged_into=survivor, aggregate=None, updated_at=now)
    )


async def add_touch(session: AsyncSession, lead_key: str, touch: Touch) -> bool:
    """Record one touch of a person; False when its event was recorded before."""
    values = {
        "lead_key": lead_key,
        "event_id": touch.event_id,
        "source": touch.source,
        "activity": touch.activity,
        "occurred_at": touch.occurred_at,
        "detail": touch.detail,
        "fields": touch.fields,
    }
    dialect = session.bind.dialect.name if session.bind is not None else ""
    stmt: Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(lead_touches).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(lead_touches).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - other databases are not supported
        stmt = insert(lead_touches).values(values)
    result = await session.execute(stmt)
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def touches(session: AsyncSession, lead_key: str) -> list[Touch]:
    """A person's touches, oldest first (every one: not for the path of each event)."""
    rows = await session.execute(
        select(lead_touches)
        .where(lead_touches.c.lead_key == lead_key)
        .order_by(lead_touches.c.occurred_at, lead_touches.c.event_id)
    )
    return [
        Touch(r.activity, r.source, r.occurred_at, r.detail, r.event_id, r.fields) for r in rows
    ]


async def save_profile(
    session: AsyncSession, values: dict[str, Any], *, exists: bool, now: datetime
) -> None:
    """Insert or update a person's profile."""
    values = {**values, "updated_at": now}
    if exists:
        await session.execute(
            update(lead_profiles)
            .where(lead_profiles.c.lead_key == values["lead_key"])
            .values(values)
        )
    else:
        await session.execute(insert(lead_profiles).values(values))


async def aliases(session: AsyncSession, lead_key: str) -> tuple[list[str], list[str]]:
    """A live profile's identifiers and the keys of the profiles merged into it (both sorted)."""
    merged = sorted(
        (
            await session.execute(
                select(lead_profiles.c.lead_key).where(lead_profiles.c.merged_into == lead_key)
            )
        ).scalars()
    )
    owned = (
        await session.execute(
            select(lead_identifiers.c.identifier).where(
                lead_identifiers.c.lead_key.in_([lead_key, *merged])
            )
        )
    ).scalars()
    return sorted(owned), merged


async def live_key(session: AsyncSession, key: str) -> str | None:
    """The live profile a key leads to: a profile key, a merged profile's key or an identifier."""
    owner = (
        await session.execute(
            select(lead_identifiers.c.lead_key).where(lead_identifiers.c.identifier == key)
        )
    ).scalar()
    found = await roots(session, [owner or key])
    return next(iter(found), None)


async def profile(session: AsyncSession, lead_key: str) -> dict[str, Any] | None:
    """A profile row as stored (no lock), without scoring's aggregate."""
    columns = [c for c in lead_profiles.c if c.name != "aggregate"]
    row = (
        await session.execute(select(*columns).where(lead_profiles.c.lead_key == lead_key))
    ).first()
    return dict(row._mapping) if row is not None else None
