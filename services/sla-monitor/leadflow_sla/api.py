"""The sales managers' API: open and overdue leads per team and per rep, with age and due time."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from leadflow.api_contract import problem_responses
from leadflow.auth import Principal, require
from leadflow.problems import Problem
from leadflow.processing import utcnow
from leadflow.runtime import RuntimeDep, SessionDep
from leadflow_sla import repository, service
from leadflow_sla.repository import StoredWindow, WindowHistory

router = APIRouter(prefix="/v1/sla", tags=["sla"], dependencies=[require("sla:read")])

Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many leads.")]


def _visible(request: Request) -> frozenset[str] | None:
    """The teams the caller may see (None: every team). A token or OIDC identity limited to
    some teams (a manager's) sees only their leads, in every list and count."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return None if principal is None else principal.teams


def _team_visible(request: Request, team: str) -> None:
    visible = _visible(request)
    if visible is not None and team not in visible:
        raise Problem(
            403,
            "team_not_visible",
            f"This token may not see team {team!r}; it sees {', '.join(sorted(visible))}.",
        )


class OpenWindow(BaseModel):
    """A lead waiting for its first contact: whose, since when, due when, how late."""

    lead_key: str
    assignment_id: str
    team: str
    rep_id: str
    rep_name: str
    policy: str
    clock: str
    tier: str
    assigned_at: datetime
    due_at: datetime
    age_s: float
    overdue: bool
    overdue_by_s: float
    last_alert: Literal["warning", "breached", "escalated"] | None = Field(
        description="The last alert the window raised, if any."
    )


class OpenLeads(BaseModel):
    """Leads waiting for their first contact, soonest due first."""

    now: datetime
    open: list[OpenWindow]


class RepTally(BaseModel):
    """A rep's open and overdue leads."""

    rep_id: str
    rep_name: str
    open: int
    overdue: int
    oldest_age_s: float
    next_due_at: datetime


class TeamTally(BaseModel):
    """A team's open and overdue leads, and each of its reps'."""

    team: str
    manager: str | None = Field(description="Null for a team no longer configured.")
    open: int
    overdue: int
    oldest_age_s: float | None
    next_due_at: datetime | None
    reps: list[RepTally]


class Summary(BaseModel):
    """Every team's open and overdue leads."""

    now: datetime
    teams: list[TeamTally]


class TeamLeads(BaseModel):
    """A team's open leads and, separately, the overdue ones."""

    now: datetime
    team: str
    open: list[OpenWindow]
    overdue: list[OpenWindow]


class RepLeads(BaseModel):
    """A rep's open leads and, separately, the overdue ones."""

    now: datetime
    rep_id: str
    rep_name: str
    open: list[OpenWindow]
    overdue: list[OpenWindow]


class WindowTimer(BaseModel):
    """One stage of a window's alert ladder."""

    stage: str
    due_at: datetime
    status: str
    closed_at: datetime | None


class WindowRecord(BaseModel):
    """A follow-up window as kept, with its timers."""

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
    timers: list[WindowTimer]


class LeadWindows(BaseModel):
    """Every follow-up window a person had."""

    lead_key: str = Field(description="The key the person is known by now.")
    windows: list[WindowRecord]


def _view(window: StoredWindow, now: datetime, names: dict[str, str]) -> OpenWindow:
    overdue_by = (now - window.due_at).total_seconds()
    return OpenWindow(
        lead_key=window.lead_key,
        assignment_id=window.assignment_id,
        team=window.team,
        rep_id=window.rep_id,
        rep_name=names.get(window.rep_id, window.rep_id),
        policy=window.policy,
        clock=window.clock,
        tier=window.tier,
        assigned_at=window.assigned_at,
        due_at=window.due_at,
        age_s=round((now - window.assigned_at).total_seconds(), 3),
        overdue=overdue_by >= 0,
        overdue_by_s=round(max(0.0, overdue_by), 3),
        last_alert=window.last_alert,
    )


def _record(history: WindowHistory) -> WindowRecord:
    return WindowRecord(
        **asdict(history.window), timers=[WindowTimer(**asdict(t)) for t in history.timers]
    )


def _known(runtime: RuntimeDep, team: str | None, rep: str | None) -> dict[str, str]:
    config = runtime.settings.app
    if team is not None and team not in {t.name for t in config.teams}:
        raise Problem(
            404, "unknown_team", f"There is no team {team!r}; GET /v1/sla/summary lists them."
        )
    if rep is not None and rep not in {r.id for r in config.reps}:
        raise Problem(
            404, "unknown_rep", f"There is no rep {rep!r}; GET /v1/sla/summary lists them."
        )
    return {r.id: r.name for r in config.reps}


@router.get("/open", responses=problem_responses(404))
async def open_leads(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    team: str | None = None,
    rep: str | None = None,
    overdue: bool = False,
    limit: Limit = 100,
) -> OpenLeads:
    """Leads waiting for their first contact, soonest due first; `overdue=true`: only late ones."""
    names = _known(runtime, team, rep)
    if team is not None:
        _team_visible(request, team)
    now = utcnow()
    windows = await repository.open_windows(
        session,
        now,
        team=team,
        rep_id=rep,
        overdue_only=overdue,
        limit=limit,
        teams=_visible(request),
    )
    return OpenLeads(now=now, open=[_view(w, now, names) for w in windows])


@router.get("/summary")
async def summary(request: Request, session: SessionDep, runtime: RuntimeDep) -> Summary:
    """Per team and per rep: open leads, overdue leads, the oldest one's age, the next due time."""
    config = runtime.settings.app
    now = utcnow()
    rows = await repository.open_counts(session, now)
    teams: dict[str, dict[str, Any]] = {
        t.name: {
            "team": t.name,
            "manager": t.manager.name,
            "open": 0,
            "overdue": 0,
            "oldest_age_s": None,
            "next_due_at": None,
            "reps": [],
        }
        for t in config.teams
    }
    names = {r.id: r.name for r in config.reps}
    for row in rows:
        team = teams.setdefault(
            row.team,
            {
                "team": row.team,
                "manager": None,
                "open": 0,
                "overdue": 0,
                "oldest_age_s": None,
                "next_due_at": None,
                "reps": [],
            },
        )
        age = round((now - row.oldest_assigned_at).total_seconds(), 3)
        team["reps"].append(
            {
                "rep_id": row.rep_id,
                "rep_name": names.get(row.rep_id, row.rep_id),
                "open": row.open,
                "overdue": row.overdue,
                "oldest_age_s": age,
                "next_due_at": row.next_due_at,
            }
        )
        team["open"] += row.open
        team["overdue"] += row.overdue
        team["oldest_age_s"] = max(team["oldest_age_s"] or 0.0, age)
        if team["next_due_at"] is None or row.next_due_at < team["next_due_at"]:
            team["next_due_at"] = row.next_due_at
    visible = _visible(request)
    shown = [t for name, t in teams.items() if visible is None or name in visible]
    return Summary.model_validate({"now": now, "teams": shown})


@router.get("/teams/{team}", responses=problem_responses(404))
async def team_leads(
    team: str, request: Request, session: SessionDep, runtime: RuntimeDep, limit: Limit = 100
) -> TeamLeads:
    """A team's open leads and, separately, the overdue ones."""
    names = _known(runtime, team, None)
    _team_visible(request, team)
    now = utcnow()
    windows = await repository.open_windows(session, now, team=team, limit=limit)
    late = await repository.open_windows(session, now, team=team, overdue_only=True, limit=limit)
    return TeamLeads.model_validate(
        {
            "now": now,
            "team": team,
            "open": [_view(w, now, names) for w in windows],
            "overdue": [_view(w, now, names) for w in late],
        }
    )


@router.get("/reps/{rep_id}", responses=problem_responses(404))
async def rep_leads(
    rep_id: str, request: Request, session: SessionDep, runtime: RuntimeDep, limit: Limit = 100
) -> RepLeads:
    """A rep's open leads and, separately, the overdue ones (of the teams the caller sees)."""
    names = _known(runtime, None, rep_id)
    visible = _visible(request)
    now = utcnow()
    windows = await repository.open_windows(session, now, rep_id=rep_id, limit=limit, teams=visible)
    late = await repository.open_windows(
        session, now, rep_id=rep_id, overdue_only=True, limit=limit, teams=visible
    )
    return RepLeads.model_validate(
        {
            "now": now,
            "rep_id": rep_id,
            "rep_name": names[rep_id],
            "open": [_view(w, now, names) for w in windows],
            "overdue": [_view(w, now, names) for w in late],
        }
    )


@router.get("/leads/{lead_key}", responses=problem_responses(404))
async def lead_windows(lead_key: str, request: Request, session: SessionDep) -> LeadWindows:
    """Every follow-up window a person had, with each stage's due time and what became of it;
    at any of the person's keys (`lead_key` in the answer is the one they are known by now)."""
    person = await service.person_key(session, lead_key)
    history = await repository.lead_history(session, person)
    visible = _visible(request)
    if visible is not None:
        history = [h for h in history if h.window.team in visible]
    if not history:
        raise Problem(404, "unknown_lead", f"No follow-up window was opened for lead {lead_key!r}.")
    return LeadWindows(lead_key=person, windows=[_record(h) for h in history])
