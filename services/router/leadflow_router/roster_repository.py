"""Every SQL statement of the run-time roster: rep overrides, absences and the admin audit log."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_router.tables import admin_audit, rep_absences, rep_overrides


@dataclass(frozen=True, slots=True)
class AbsenceRecord:
    """A row of `rep_absences`: an out-of-office period added at run time, and by whom."""

    id: int
    rep_id: str
    starts_at: datetime
    ends_at: datetime
    note: str
    created_at: datetime
    created_by: str
    cancelled_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A row of `admin_audit`: who changed what at run time, when, and the before and after
    (JSON documents as the change wrote them; None where there was nothing)."""

    id: int
    at: datetime
    actor: str
    action: str
    rep_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


async def overrides(session: AsyncSession, rep_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Stored overrides of these reps: each the JSON document of `RepOverride` fields set,
    kept as written (merged, audited and shown as it is)."""
    rows = await session.execute(
        select(rep_overrides.c.rep_id, rep_overrides.c.settings).where(
            rep_overrides.c.rep_id.in_(list(rep_ids))
        )
    )
    return {str(rep): dict(values) for rep, values in rows.all()}


async def save_overrides(
    session: AsyncSession, rep_id: str, settings: dict[str, Any], actor: str, now: datetime
) -> None:
    """Replace a rep's stored overrides."""
    result = await session.execute(
        update(rep_overrides)
        .where(rep_overrides.c.rep_id == rep_id)
        .values(settings=settings, updated_at=now, updated_by=actor)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        await session.execute(
            insert(rep_overrides).values(
                rep_id=rep_id, settings=settings, updated_at=now, updated_by=actor
            )
        )


async def lock_overrides(session: AsyncSession, rep_id: str) -> dict[str, Any]:
    """A rep's stored overrides, row-locked on PostgreSQL for an update."""
    query = (
        select(rep_overrides.c.settings).where(rep_overrides.c.rep_id == rep_id).with_for_update()
    )
    stored = (await session.execute(query)).scalar_one_or_none()
    return dict(stored) if stored is not None else {}


async def absences(
    session: AsyncSession, rep_ids: Iterable[str], now: datetime
) -> dict[str, list[AbsenceRecord]]:
    """Run-time absences of these reps that have not ended and were not cancelled."""
    rows = await session.execute(
        select(rep_absences)
        .where(
            rep_absences.c.rep_id.in_(list(rep_ids)),
            rep_absences.c.ends_at > now,
            rep_absences.c.cancelled_at.is_(None),
        )
        .order_by(rep_absences.c.starts_at, rep_absences.c.id)
    )
    result: dict[str, list[AbsenceRecord]] = defaultdict(list)
    for row in rows:
        result[row.rep_id].append(_absence(row))
    return dict(result)


async def add_absence(
    session: AsyncSession,
    rep_id: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    note: str,
    actor: str,
    now: datetime,
) -> int:
    """Store an out-of-office period; returns its id."""
    result = await session.execute(
        insert(rep_absences)
        .values(
            rep_id=rep_id,
            starts_at=starts_at,
            ends_at=ends_at,
            note=note,
            created_at=now,
            created_by=actor,
        )
        .returning(rep_absences.c.id)
    )
    return int(result.scalar_one())


async def absence(session: AsyncSession, rep_id: str, absence_id: int) -> AbsenceRecord | None:
    """One run-time absence of a rep."""
    query = select(rep_absences).where(
        rep_absences.c.id == absence_id, rep_absences.c.rep_id == rep_id
    )
    row = (await session.execute(query)).first()
    return _absence(row) if row is not None else None


def _absence(row: Row[Any]) -> AbsenceRecord:
    return AbsenceRecord(
        id=int(row.id),
        rep_id=str(row.rep_id),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        note=str(row.note),
        created_at=row.created_at,
        created_by=str(row.created_by),
        cancelled_at=row.cancelled_at,
    )


async def cancel_absence(session: AsyncSession, absence_id: int, now: datetime) -> None:
    """Cancel an absence (it stays in the table, for the record)."""
    await session.execute(
        update(rep_absences).where(rep_absences.c.id == absence_id).values(cancelled_at=now)
    )


async def audit(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    rep_id: str | None,
    before: Any,
    after: Any,
    now: datetime,
) -> None:
    """Write one line of the admin audit log (who, what, when, before, after)."""
    await session.execute(
        insert(admin_audit).values(
            at=now, actor=actor, action=action, rep_id=rep_id, before=before, after=after
        )
    )


async def audit_log(session: AsyncSession, rep_id: str | None, limit: int) -> list[AuditRecord]:
    """The latest audit lines, newest first (optionally for one rep)."""
    query = select(admin_audit).order_by(admin_audit.c.at.desc(), admin_audit.c.id.desc())
    if rep_id is not None:
        query = query.where(admin_audit.c.rep_id == rep_id)
    return [
        AuditRecord(
            id=int(r.id),
            at=r.at,
            actor=str(r.actor),
            action=str(r.action),
            rep_id=r.rep_id,
            before=r.before,
            after=r.after,
        )
        for r in await session.execute(query.limit(limit))
    ]
