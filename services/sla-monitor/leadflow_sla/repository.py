"""Every SQL statement of the SLA monitor."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import tracing
from leadflow.db.statements import insert_new
from leadflow.db.tables import UtcDateTime
from leadflow_sla.ladder import Stage, StagePlan
from leadflow_sla.tables import sla_outcomes, sla_timers, sla_windows
from leadflow_sla.windows import MERGED, SETTLING, FollowUpWindow, ReportedOutcome

STAGE_COLUMNS = {"warning": "warned_at", "breached": "breached_at", "escalated": "escalated_at"}


# The columns of a `FollowUpWindow` besides its id (what a batch loads and inserts).
WINDOW_COLUMNS = (
    "assignment_id",
    "lead_key",
    "policy",
    "clock",
    "window_s",
    "tier",
    "rep_id",
    "team",
    "escalations",
    "assigned_at",
    "due_at",
    "status",
    "outcome",
    "contacted_at",
    "closed_at",
    "batch_position",
)


async def windows_touched(
    session: AsyncSession, lead_keys: Collection[str], assignment_ids: Collection[str]
) -> list[FollowUpWindow]:
    """The open windows of these people and those closed by a contact or an acceptance
    (their assignments still live), and the windows of these assignments, in one
    statement, oldest first."""
    if not lead_keys and not assignment_ids:
        return []
    c = sla_windows.c
    live = or_(c.status == "open", c.outcome.in_(SETTLING))
    query = (
        select(c.id, *(c[name] for name in WINDOW_COLUMNS))
        .where(
            or_(
                and_(c.lead_key.in_(sorted(lead_keys)), live),
                c.assignment_id.in_(sorted(assignment_ids)),
            )
        )
        .order_by(c.id)
    )
    return [FollowUpWindow(**r._mapping) for r in await session.execute(query)]


# Only a window still open is closed: one closed meanwhile keeps its outcome and times.
_CLOSE = (
    update(sla_windows)
    .where(sla_windows.c.id == bindparam("row_id"), sla_windows.c.status == "open")
    .values(
        status="closed",
        outcome=bindparam("new_outcome"),
        closed_at=bindparam("new_closed_at", type_=UtcDateTime()),
        contacted_at=bindparam("new_contacted_at", type_=UtcDateTime()),
    )
)


async def save_windows(
    session: AsyncSession,
    opened: Sequence[FollowUpWindow],
    closed: Sequence[FollowUpWindow],
    now: datetime,
) -> None:
    """Write back what a batch changed, a statement per kind of change whatever its size:
    the windows it opened and their timers (stopped with their window if the batch closed
    it too), the stored windows it closed (at `now`) and their open timers."""
    if opened:
        # A window another transaction opened meanwhile for the same assignment (a copy of
        # its event under another id) is kept, with its timers: the ladder is the same.
        await session.execute(insert_new(session, sla_windows), [_window(w) for w in opened])
        # Each timer continues the trace of the assignment that opened its window.
        traced = tracing.enabled()
        parents = {
            w.lead_key: tracing.traceparent_for(w.lead_key) if traced else None for w in opened
        }
        timers = [_timer(w, s, parents[w.lead_key]) for w in opened for s in w.stages]
        await session.execute(insert_new(session, sla_timers), timers)
    if not closed:
        return
    # In id order, so two transactions closing the same rows take their locks alike.
    rows = sorted(closed, key=lambda w: w.id or 0)
    await session.execute(
        _CLOSE,
        [
            {
                "row_id": w.id,
                "new_outcome": w.outcome,
                "new_closed_at": w.closed_at,
                "new_contacted_at": w.contacted_at,
            }
            for w in rows
        ],
    )
    await session.execute(
        update(sla_timers)
        .where(
            sla_timers.c.assignment_id.in_([w.assignment_id for w in rows]),
            sla_timers.c.status == "open",
        )
        .values(status="stopped", closed_at=now)
    )


async def outcomes_of(session: AsyncSession, lead_keys: Collection[str]) -> list[ReportedOutcome]:
    """The outcomes these people received, in one statement."""
    if not lead_keys:
        return []
    c = sla_outcomes.c
    rows = await session.execute(
        select(c.lead_key, c.activity, c.occurred_at, c.event_id)
        .where(c.lead_key.in_(sorted(lead_keys)))
        .order_by(c.id)
    )
    return [ReportedOutcome(*row) for row in rows.all()]


# A live assignment's window closed by a contact or an acceptance, closed again as merged.
_RELABEL = (
    update(sla_windows)
    .where(sla_windows.c.id == bindparam("row_id"), sla_windows.c.status == "closed")
    .values(
        outcome=MERGED,
        contacted_at=None,
        closed_at=bindparam("new_closed_at", type_=UtcDateTime()),
    )
)


async def save_people(
    session: AsyncSession,
    reported: Sequence[ReportedOutcome],
    moved: Mapping[str, str],
    relabeled: Sequence[FollowUpWindow] = (),
) -> None:
    """Keep the outcomes a batch received; move every row of the keys its merges absorbed
    (windows, timers, outcomes) to the survivors; close again as merged the stored closed
    windows of assignments merged away: a statement per table and kind of change."""
    if reported:
        await session.execute(
            sla_outcomes.insert(),
            [
                {
                    "lead_key": o.lead_key,
                    "event_id": o.event_id,
                    "activity": o.activity,
                    "occurred_at": o.occurred_at,
                }
                for o in reported
            ],
        )
    if relabeled:
        rows = sorted(relabeled, key=lambda w: w.id or 0)
        await session.execute(
            _RELABEL, [{"row_id": w.id, "new_closed_at": w.closed_at} for w in rows]
        )
    if not moved:
        return
    pairs = [{"absorbed": key, "survivor": root} for key, root in sorted(moved.items())]
    for table in (sla_windows, sla_timers, sla_outcomes):
        await session.execute(
            update(table)
            .where(table.c.lead_key == bindparam("absorbed"))
            .values(lead_key=bindparam("survivor")),
            pairs,
        )


def _window(window: FollowUpWindow) -> dict[str, Any]:
    return {name: getattr(window, name) for name in WINDOW_COLUMNS}


def _timer(window: FollowUpWindow, stage: StagePlan, traceparent: str | None) -> dict[str, Any]:
    return {
        "assignment_id": window.assignment_id,
        "stage": stage.stage,
        "lead_key": window.lead_key,
        "policy": window.policy,
        "rep_id": window.rep_id,
        "team": window.team,
        "assigned_at": window.assigned_at,
        "due_at": stage.due_at,
        "status": "open" if window.status == "open" else "stopped",
        "closed_at": window.closed_at,
        "traceparent": traceparent,
    }


@dataclass(frozen=True, slots=True)
class DueTimer:
    """An open row of `sla_timers` whose time has come: one stage of an assignment's ladder,
    with what the alert is worded from when its window is gone."""

    id: int
    assignment_id: str
    stage: Stage
    lead_key: str
    policy: str
    rep_id: str
    team: str
    assigned_at: datetime
    due_at: datetime
    # The trace of the assignment that opened it: its alert continues there.
    traceparent: str | None


@dataclass(frozen=True, slots=True)
class StoredWindow:
    """A row of `sla_windows` as kept: whose, under which policy, due when, what became of
    it, and when it reached each stage of its ladder (None: not reached)."""

    id: int
    assignment_id: str
    lead_key: str
    policy: str
    clock: str
    window_s: float
    tier: str
    rep_id: str
    team: str
    escalations: int
    assigned_at: datetime
    due_at: datetime
    status: str
    outcome: str | None
    warned_at: datetime | None
    breached_at: datetime | None
    escalated_at: datetime | None
    contacted_at: datetime | None
    closed_at: datetime | None

    @property
    def last_alert(self) -> Stage | None:
        """The last stage whose alert the window raised, if any."""
        reached: tuple[tuple[Stage, datetime | None], ...] = (
            ("escalated", self.escalated_at),
            ("breached", self.breached_at),
            ("warning", self.warned_at),
        )
        for stage, at in reached:
            if at is not None:
                return stage
        return None


# The columns a `StoredWindow` is read from, in its order.
_STORED = tuple(sla_windows.c[f.name] for f in fields(StoredWindow))


@dataclass(frozen=True, slots=True)
class OpenCount:
    """A rep's open windows in a team: how many, how many overdue, the oldest assignment's
    time and the soonest due time."""

    team: str
    rep_id: str
    open: int
    overdue: int
    oldest_assigned_at: datetime
    next_due_at: datetime


@dataclass(frozen=True, slots=True)
class TimerStage:
    """One stage of a window's alert ladder, as its timer row kept it."""

    stage: str
    due_at: datetime
    status: str
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class WindowHistory:
    """One of a lead's windows with its ladder's timers, soonest due first."""

    window: StoredWindow
    timers: tuple[TimerStage, ...]


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[DueTimer]:
    """Open timers due by `now`, locked so that no other instance fires them too."""
    t = sla_timers.c
    rows = await session.execute(
        select(
            t.id,
            t.assignment_id,
            t.stage,
            t.lead_key,
            t.policy,
            t.rep_id,
            t.team,
            t.assigned_at,
            t.due_at,
            t.traceparent,
        )
        .where(t.status == "open", t.due_at <= now)
        .order_by(t.due_at, t.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [DueTimer(**r._mapping) for r in rows]


async def mark_fired(session: AsyncSession, timer_id: int, now: datetime) -> bool:
    """Close a due timer as fired; False if someone else closed it first."""
    result = await session.execute(
        update(sla_timers)
        .where(sla_timers.c.id == timer_id, sla_timers.c.status == "open")
        .values(status="fired", closed_at=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def windows_of(session: AsyncSession, assignment_ids: list[str]) -> dict[str, StoredWindow]:
    """The windows of these assignments, by assignment id."""
    if not assignment_ids:
        return {}
    rows = await session.execute(
        select(*_STORED).where(sla_windows.c.assignment_id.in_(assignment_ids))
    )
    return {r.assignment_id: StoredWindow(**r._mapping) for r in rows}


async def mark_stage(session: AsyncSession, assignment_id: str, stage: str, now: datetime) -> None:
    """Record on the window that it reached `stage`."""
    await session.execute(
        update(sla_windows)
        .where(sla_windows.c.assignment_id == assignment_id)
        .values({STAGE_COLUMNS[stage]: now})
    )


async def due_times(session: AsyncSession, until: datetime, limit: int) -> list[datetime]:
    """Due times of open timers up to `until`, soonest first (the scheduler's horizon)."""
    rows = await session.execute(
        select(sla_timers.c.due_at)
        .where(sla_timers.c.status == "open", sla_timers.c.due_at <= until)
        .order_by(sla_timers.c.due_at)
        .limit(limit)
    )
    return list(rows.scalars())


async def count_open_timers(session: AsyncSession) -> int:
    """How many timers are open."""
    query = select(func.count()).where(sla_timers.c.status == "open")
    return int((await session.execute(query)).scalar_one())


async def open_counts(session: AsyncSession, now: datetime) -> list[OpenCount]:
    """Per team and rep: open windows, overdue ones, oldest assignment, next due time."""
    overdue = func.sum(case((sla_windows.c.due_at <= now, 1), else_=0))
    rows = await session.execute(
        select(
            sla_windows.c.team,
            sla_windows.c.rep_id,
            func.count().label("open"),
            overdue.label("overdue"),
            func.min(sla_windows.c.assigned_at).label("oldest_assigned_at"),
            func.min(sla_windows.c.due_at).label("next_due_at"),
        )
        .where(sla_windows.c.status == "open")
        .group_by(sla_windows.c.team, sla_windows.c.rep_id)
        .order_by(sla_windows.c.team, sla_windows.c.rep_id)
    )
    return [_open_count(r) for r in rows]


def _open_count(row: Row[Any]) -> OpenCount:
    return OpenCount(
        team=str(row.team),
        rep_id=str(row.rep_id),
        open=int(row.open),
        # A sum over a group is never empty, but a driver may hand back a Decimal.
        overdue=int(row.overdue or 0),
        oldest_assigned_at=row.oldest_assigned_at,
        next_due_at=row.next_due_at,
    )


async def open_windows(
    session: AsyncSession,
    now: datetime,
    *,
    team: str | None = None,
    rep_id: str | None = None,
    overdue_only: bool = False,
    limit: int = 100,
    teams: Collection[str] | None = None,
    due_from: datetime | None = None,
    due_until: datetime | None = None,
) -> list[StoredWindow]:
    """Open windows, soonest due first, optionally of one team (or of `teams`) or rep, only
    overdue ones, or only those due in [due_from, due_until)."""
    query = select(*_STORED).where(sla_windows.c.status == "open")
    if team is not None:
        query = query.where(sla_windows.c.team == team)
    if teams is not None:
        query = query.where(sla_windows.c.team.in_(sorted(teams)))
    if due_from is not None:
        query = query.where(sla_windows.c.due_at >= due_from)
    if due_until is not None:
        query = query.where(sla_windows.c.due_at < due_until)
    if rep_id is not None:
        query = query.where(sla_windows.c.rep_id == rep_id)
    if overdue_only:
        query = query.where(sla_windows.c.due_at <= now)
    query = query.order_by(sla_windows.c.due_at, sla_windows.c.id).limit(limit)
    return [StoredWindow(**r._mapping) for r in await session.execute(query)]


async def lead_history(session: AsyncSession, lead_key: str) -> list[WindowHistory]:
    """Every window of a lead with its timers, oldest first."""
    windows = [
        StoredWindow(**r._mapping)
        for r in await session.execute(
            select(*_STORED)
            .where(sla_windows.c.lead_key == lead_key)
            .order_by(sla_windows.c.assigned_at, sla_windows.c.id)
        )
    ]
    t = sla_timers.c
    timers = await session.execute(
        select(t.assignment_id, t.stage, t.due_at, t.status, t.closed_at)
        .where(t.lead_key == lead_key)
        .order_by(t.due_at, t.id)
    )
    by_assignment: dict[str, list[TimerStage]] = {}
    for row in timers:
        by_assignment.setdefault(row.assignment_id, []).append(
            TimerStage(row.stage, row.due_at, row.status, row.closed_at)
        )
    return [WindowHistory(w, tuple(by_assignment.get(w.assignment_id, ()))) for w in windows]
