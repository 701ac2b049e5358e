"""The general pool's API: what waits in a team's pool, and a rep claiming a lead from it.

`GET /v1/pools/{team}` (scope `leads:read`, a caller who sees the team) lists the leads
waiting, oldest first, with their ages. `POST /v1/leads/{lead_key}/claim` (scope
`leads:claim`, a rep's own token) gives one to the rep whose token it is; of two reps
claiming at once one gets it and the other a 409 naming who did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel

from leadflow.auth import Principal, require
from leadflow.events import Tier
from leadflow.problems import Problem
from leadflow.processing import utcnow
from leadflow.runtime import RuntimeDep, SessionDep
from leadflow_router import repository, roster_repository
from leadflow_router.book_repository import SqlRoutingStore
from leadflow_router.claims import ClaimRefused, claim_lead
from leadflow_router.metrics import CLAIMS
from leadflow_router.notify import NotifyOptions

router = APIRouter(prefix="/v1", tags=["pools"])


class WaitingLead(BaseModel):
    """A lead waiting in a pool."""

    lead_key: str
    assignment_id: str
    pooled_at: datetime
    waiting_s: float
    # When nobody having claimed it is reported to the manager (and, per the team's
    # fallback, the team's distribution gives it); whether that happened already.
    unclaimed_at: datetime
    unclaimed: bool
    rule: str
    tier: Tier | None
    score: int | None
    source: str | None
    company: str | None


class PoolView(BaseModel):
    """A team's pool: the leads waiting in it, the longest waiting first."""

    team: str
    sla_starts: str | None
    unclaimed_after_s: float | None
    fallback: str | None
    leads: list[WaitingLead]


class ClaimedLead(BaseModel):
    """The assignment a claim made."""

    lead_key: str
    assignment_id: str
    rep_id: str
    team: str
    seq: int
    claimed_at: datetime
    waited_s: float
    pool_entry_id: str


@router.get(
    "/pools/{team}",
    responses={
        403: {"description": "The caller may not see this team's leads."},
        404: {"description": "No such team."},
    },
)
async def pool(
    team: str,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: Annotated[Principal, require("leads:read")],
) -> PoolView:
    """The leads waiting in a team's pool, the longest waiting first, with their ages."""
    config = runtime.settings.app
    found = next((t for t in config.teams if t.name == team), None)
    if found is None:
        raise Problem(404, "unknown_team", f"No team {team!r} is configured.")
    if not principal.sees_team(team):
        raise Problem(
            403,
            "team_not_visible",
            f"The token {principal.name!r} may not see the leads of team {team!r}.",
        )
    now = utcnow()
    waiting = await repository.pool_leads(session, team)
    settings = found.pool
    return PoolView(
        team=team,
        sla_starts=settings.sla_starts if settings is not None else None,
        unclaimed_after_s=settings.unclaimed_after.total_seconds() if settings else None,
        fallback=settings.fallback if settings is not None else None,
        leads=[
            WaitingLead(
                lead_key=one.lead_key,
                assignment_id=one.assignment_id,
                pooled_at=one.pooled_at,
                waiting_s=max(0.0, (now - one.pooled_at).total_seconds()),
                unclaimed_at=one.due_at,
                unclaimed=one.alerted_at is not None,
                rule=one.rule,
                tier=one.scored.tier if one.scored is not None else None,
                score=one.scored.score if one.scored is not None else None,
                source=one.scored.source if one.scored is not None else None,
                company=one.scored.lead.company.name if one.scored is not None else None,
            )
            for one in waiting
        ],
    )


@router.post(
    "/leads/{lead_key}/claim",
    responses={
        403: {"description": "The token speaks for no rep, or the rep is not in the team."},
        404: {"description": "The lead is not waiting in any pool."},
        409: {"description": "Someone claimed the lead first, or it left the pool."},
        422: {"description": "The rep is inactive or out of office."},
    },
)
async def claim(
    lead_key: str,
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, require("leads:claim")],
) -> ClaimedLead:
    """Take a lead waiting in a pool (any of the person's keys) for the rep whose token
    this is: it is assigned to them, published, and their follow-up window opens."""
    rep_id = principal.rep
    config = runtime.settings.app
    if rep_id is None:
        raise Problem(
            403,
            "not_a_rep",
            f"The token {principal.name!r} speaks for no rep: claim with the rep's own token "
            "(a token entry with `rep`).",
        )
    if not any(rep.id == rep_id for rep in config.reps):
        raise Problem(
            403,
            "unknown_rep",
            f"The token {principal.name!r} speaks for rep {rep_id!r}, who is not configured.",
        )
    options: NotifyOptions = getattr(request.app.state, "notify_options", NotifyOptions())
    now = utcnow()
    try:
        async with runtime.sessions() as session, session.begin():
            claimed = await claim_lead(
                SqlRoutingStore(session), config, lead_key, rep_id, now, options
            )
            taken = claimed.assignment
            await roster_repository.audit(
                session,
                actor=principal.name,
                action="lead.claim",
                rep_id=rep_id,
                before={
                    "lead_key": claimed.lead_key,
                    "pool_entry_id": claimed.entry.assignment_id,
                    "team": claimed.entry.team,
                    "pooled_at": claimed.entry.assigned_at.isoformat(),
                },
                after={"assignment_id": taken.assignment_id, "rep_id": rep_id, "seq": taken.seq},
                now=now,
            )
    except ClaimRefused as refused:
        CLAIMS.labels(refused.code).inc()
        raise Problem(refused.status, refused.code, refused.detail) from refused
    CLAIMS.labels("claimed").inc()
    relay = getattr(runtime, "relay", None)
    if relay is not None:
        relay.wake()  # publish the assignment now, not at the relay's next poll
    return ClaimedLead(
        lead_key=claimed.lead_key,
        assignment_id=taken.assignment_id,
        rep_id=rep_id,
        team=taken.team,
        seq=taken.seq,
        claimed_at=now,
        waited_s=(now - claimed.entry.assigned_at).total_seconds(),
        pool_entry_id=claimed.entry.assignment_id,
    )
