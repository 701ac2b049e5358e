"""The Now page: overdue and at-risk leads, load per rep, and the pools, for one viewer.

Built from the SLA monitor's open windows (two indexed queries of at most `LIST_LIMIT`
rows and one count per team and rep, whatever the number of open windows) and the
router's pools (one call per visible team that has a pool, at once).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.auth import Principal
from leadflow.config import LeadflowConfig
from leadflow_sla import repository
from leadflow_sla.console.upstream import Upstream
from leadflow_sla.repository import StoredWindow

# A lead due within this long (and not yet overdue) is at risk.
AT_RISK_S = 900.0
# At most this many leads in each list: the counts per rep cover the rest.
LIST_LIMIT = 100


@dataclass(frozen=True)
class WindowRow:
    """One lead waiting for its first contact."""

    lead_key: str
    assignment_id: str
    team: str
    rep_id: str
    rep_name: str
    tier: str
    assigned_at: datetime
    due_at: datetime
    age_s: float
    # Negative once overdue.
    left_s: float
    last_alert: str | None

    @property
    def overdue(self) -> bool:
        """Whether the window's due time has passed."""
        return self.left_s <= 0


@dataclass(frozen=True)
class RepLine:
    """One rep's open and overdue leads."""

    team: str
    rep_id: str
    rep_name: str
    open: int
    overdue: int
    oldest_age_s: float
    next_due_at: datetime


@dataclass(frozen=True)
class Pool:
    """A team's pool as the router answered, or why it could not."""

    team: str
    leads: list[dict[str, Any]]
    problem: str | None
    can_claim: bool


@dataclass
class Board:
    """Everything on the Now page."""

    now: datetime
    teams: list[str]
    sees_windows: bool
    overdue: list[WindowRow] = field(default_factory=list)
    at_risk: list[WindowRow] = field(default_factory=list)
    reps: list[RepLine] = field(default_factory=list)
    pools: list[Pool] = field(default_factory=list)

    @property
    def overdue_total(self) -> int:
        """Overdue leads of the visible teams (beyond the listed ones too)."""
        return sum(r.overdue for r in self.reps)

    @property
    def open_total(self) -> int:
        """Open leads of the visible teams."""
        return sum(r.open for r in self.reps)


def visible_teams(config: LeadflowConfig, principal: Principal) -> list[str]:
    """The teams whose leads the viewer sees: a rep's own token (no read scope) sees the
    teams the rep is in; anyone else the teams their token names, or all."""
    teams = [t for t in config.teams if principal.sees_team(t.name)]
    if principal.rep is not None and not (
        principal.allows("sla:read") or principal.allows("leads:read")
    ):
        teams = [t for t in teams if principal.rep in t.reps]
    return [t.name for t in teams]


def _row(window: StoredWindow, now: datetime, names: dict[str, str]) -> WindowRow:
    return WindowRow(
        lead_key=window.lead_key,
        assignment_id=window.assignment_id,
        team=window.team,
        rep_id=window.rep_id,
        rep_name=names.get(window.rep_id, window.rep_id),
        tier=window.tier,
        assigned_at=window.assigned_at,
        due_at=window.due_at,
        age_s=max(0.0, (now - window.assigned_at).total_seconds()),
        left_s=(window.due_at - now).total_seconds(),
        last_alert=window.last_alert,
    )


async def windows_part(
    session: AsyncSession, config: LeadflowConfig, teams: list[str], now: datetime
) -> tuple[list[WindowRow], list[WindowRow], list[RepLine]]:
    """Overdue leads, at-risk leads and the per-rep counts of `teams`."""
    names = {r.id: r.name for r in config.reps}
    late = await repository.open_windows(session, now, teams=teams, due_until=now, limit=LIST_LIMIT)
    soon = await repository.open_windows(
        session,
        now,
        teams=teams,
        due_from=now,
        due_until=now + timedelta(seconds=AT_RISK_S),
        limit=LIST_LIMIT,
    )
    wanted = set(teams)
    reps = [
        RepLine(
            team=row.team,
            rep_id=row.rep_id,
            rep_name=names.get(row.rep_id, row.rep_id),
            open=row.open,
            overdue=row.overdue,
            oldest_age_s=max(0.0, (now - row.oldest_assigned_at).total_seconds()),
            next_due_at=row.next_due_at,
        )
        for row in await repository.open_counts(session, now)
        if row.team in wanted
    ]
    return [_row(w, now, names) for w in late], [_row(w, now, names) for w in soon], reps


async def pools_part(
    upstream: Upstream, config: LeadflowConfig, principal: Principal, teams: list[str]
) -> list[Pool]:
    """The pools of `teams` that have one, as the router sees them now."""
    pooled = [t for t in config.teams if t.name in teams and t.pool is not None]
    if not pooled or not (principal.allows("leads:read") or principal.allows("leads:claim")):
        return []
    answers = await asyncio.gather(*(upstream.pool(t.name) for t in pooled))
    pools = []
    for team, answer in zip(pooled, answers, strict=True):
        leads = list(answer.data.get("leads", [])) if answer.ok else []
        can_claim = (
            principal.allows("leads:claim")
            and principal.rep is not None
            and principal.rep in team.reps
        )
        pools.append(Pool(team.name, leads, answer.problem, can_claim))
    return pools


async def build(
    session: AsyncSession,
    upstream: Upstream,
    config: LeadflowConfig,
    principal: Principal,
    now: datetime,
    *,
    pools: bool = True,
) -> Board:
    """The Now page of `principal` at `now` (without asking the router when not `pools`)."""
    teams = visible_teams(config, principal)
    board = Board(now=now, teams=teams, sees_windows=principal.allows("sla:read"))
    # The router first: no read transaction of ours is open while it answers (SQLite).
    if pools:
        board.pools = await pools_part(upstream, config, principal, teams)
    if board.sees_windows:
        board.overdue, board.at_risk, board.reps = await windows_part(session, config, teams, now)
    return board
