"""Run-time changes: rep overrides and absences, leads reassigned by hand, each audited
(who, what, when, how)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.config import LeadflowConfig
from leadflow_router import book_repository, roster, roster_repository
from leadflow_router.availability import RepLoad, local_day_start, off_duty, over_capacity
from leadflow_router.book_repository import SqlRoutingStore
from leadflow_router.metrics import ADMIN_CHANGES
from leadflow_router.notify import NotifyOptions
from leadflow_router.service import (
    HandedOver,
    current_reps,
    reassign_by_hand,
    redistribute_absent,
)

_FIELDS = (
    "active",
    "max_per_day",
    "max_open",
    "weight",
    "working_hours",
    "languages",
    "products",
    "regions",
)


async def rep_views(
    session: AsyncSession, config: LeadflowConfig, rep_ids: list[str], now: datetime
) -> list[dict[str, Any]]:
    """Each rep as configured, as overridden, as effective now, with load and availability."""
    reps = await current_reps(session, config, rep_ids, now)
    stored = await roster_repository.overrides(session, rep_ids)
    absent = await roster_repository.absences(session, rep_ids, now)
    day_starts = {r: local_day_start(rep, now) for r, rep in reps.items()}
    open_leads, since = await book_repository.tallies(session, rep_ids, set(day_starts.values()))
    views = []
    for rep_id in rep_ids:
        rep = reps[rep_id]
        load = RepLoad(today=since[day_starts[rep_id]][rep_id][0], open=open_leads[rep_id])
        reason = off_duty(rep, now) or over_capacity(rep, load)
        views.append(
            {
                "id": rep_id,
                "name": rep.name,
                "timezone": rep.timezone,
                "teams": [t.name for t in config.teams if rep_id in t.reps],
                "effective": rep.model_dump(mode="json", include=set(_FIELDS)),
                "overrides": stored.get(rep_id, {}),
                "out_of_office": [a.model_dump(mode="json") for a in rep.out_of_office],
                "absences": [
                    {
                        "id": a.id,
                        "start": a.starts_at,
                        "end": a.ends_at,
                        "note": a.note,
                        "created_by": a.created_by,
                    }
                    for a in absent.get(rep_id, [])
                ],
                "load": {"today": load.today, "open": load.open},
                "available_now": reason is None,
                "unavailable_because": reason,
            }
        )
    return views


async def change_rep(
    session: AsyncSession,
    rep_id: str,
    change: roster.RepOverride,
    actor: str,
    now: datetime,
) -> None:
    """Apply a change to a rep's overrides and audit it."""
    before = await roster_repository.lock_overrides(session, rep_id)
    after = roster.merge(before, change)
    await roster_repository.save_overrides(session, rep_id, after, actor, now)
    await roster_repository.audit(
        session,
        actor=actor,
        action="rep.update",
        rep_id=rep_id,
        before=before,
        after=after,
        now=now,
    )
    ADMIN_CHANGES.labels("rep.update").inc()


async def reassign(
    session: AsyncSession,
    config: LeadflowConfig,
    lead_key: str,
    rep_id: str,
    reason: str,
    actor: str,
    now: datetime,
    options: NotifyOptions | None = None,
) -> HandedOver:
    """Give a lead to a rep by hand and audit it (`service.reassign_by_hand`; raises
    `ReassignRefused`)."""
    moved = await reassign_by_hand(
        SqlRoutingStore(session), config, lead_key, rep_id, reason, now, options, actor=actor
    )
    await _audit_handover(session, moved, reason, actor, now)
    ADMIN_CHANGES.labels("lead.reassign").inc()
    return moved


def handover_view(moved: HandedOver) -> dict[str, Any]:
    """A lead moved outside routing, as the admin API answers it."""
    taken, previous = moved.assignment, moved.previous
    return {
        "lead_key": moved.lead_key,
        "assignment_id": taken.assignment_id,
        "rep_id": taken.rep_id,
        "team": taken.team,
        "rule": taken.rule,
        "seq": taken.seq,
        "assigned_at": taken.assigned_at.isoformat(),
        "previous_assignment_id": previous.assignment_id,
        "previous_rep_id": previous.rep_id,
        "close_reason": previous.close_reason,
    }


async def _audit_handover(
    session: AsyncSession, moved: HandedOver, reason: str, actor: str, now: datetime
) -> None:
    """One audit line per lead moved, under the rep it was taken from."""
    previous = moved.previous
    await roster_repository.audit(
        session,
        actor=actor,
        action="lead.reassign",
        rep_id=previous.rep_id,
        before={
            "lead_key": moved.lead_key,
            "assignment_id": previous.assignment_id,
            "rep_id": previous.rep_id,
        },
        after={**handover_view(moved), "reason": reason},
        now=now,
    )


async def add_absence(
    session: AsyncSession,
    rep_id: str,
    absence: roster.AbsenceIn,
    actor: str,
    now: datetime,
    config: LeadflowConfig | None = None,
    options: NotifyOptions | None = None,
) -> tuple[int, list[HandedOver], list[str]]:
    """Mark a rep out of office for a period; returns the absence id, and when it covers
    now and `config` makes one of the rep's teams redistribute on absence, the leads handed
    to the team's other reps (each audited) and the keys of those nobody could take."""
    absence_id = await roster_repository.add_absence(
        session,
        rep_id,
        starts_at=absence.start,
        ends_at=absence.end,
        note=absence.note,
        actor=actor,
        now=now,
    )
    await roster_repository.audit(
        session,
        actor=actor,
        action="rep.out_of_office.add",
        rep_id=rep_id,
        before=None,
        after={"id": absence_id, **absence.model_dump(mode="json")},
        now=now,
    )
    ADMIN_CHANGES.labels("rep.out_of_office.add").inc()
    if config is None or not absence.start <= now < absence.end:
        return absence_id, [], []
    moved, stayed = await redistribute_absent(
        SqlRoutingStore(session), config, rep_id, now, options
    )
    for one in moved:
        await _audit_handover(session, one, "out_of_office", actor, now)
    if moved:
        ADMIN_CHANGES.labels("lead.reassign").inc(len(moved))
    return absence_id, moved, stayed


async def cancel_absence(
    session: AsyncSession, rep_id: str, absence_id: int, actor: str, now: datetime
) -> bool:
    """End an absence early (cancel it); False when the rep has no such absence."""
    found = await roster_repository.absence(session, rep_id, absence_id)
    if found is None:
        return False
    before = {
        "id": absence_id,
        "start": found.starts_at.isoformat(),
        "end": found.ends_at.isoformat(),
        "note": found.note,
        "cancelled": found.cancelled_at is not None,
    }
    if found.cancelled_at is None:
        await roster_repository.cancel_absence(session, absence_id, now)
    await roster_repository.audit(
        session,
        actor=actor,
        action="rep.out_of_office.cancel",
        rep_id=rep_id,
        before=before,
        after={**before, "cancelled": True},
        now=now,
    )
    ADMIN_CHANGES.labels("rep.out_of_office.cancel").inc()
    return True
