"""`GET /v1/leads/{lead_key}/routing`: why a lead went where it went."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from leadflow.auth import require
from leadflow.config import LeadflowConfig
from leadflow.problems import Problem
from leadflow.runtime import RuntimeDep, SessionDep
from leadflow_router import repository
from leadflow_router.book import MERGED, Assignment
from leadflow_router.repository import DecisionRecord

router = APIRouter(prefix="/v1", tags=["routing"], dependencies=[require("leads:read")])


class Candidate(BaseModel):
    """A rep the decision considered, and their part in it."""

    rep_id: str
    rep_name: str | None
    outcome: Literal["chosen", "skipped", "available"]
    why: str


class SkippedEarlier(BaseModel):
    """A rep skipped before the candidates were drawn (an account owner, a named rep)."""

    rep_id: str
    rep_name: str | None
    why: str


class DecisionView(BaseModel):
    """One routing decision, with each candidate's part in it spelled out."""

    assignment_id: str
    decided_at: datetime
    kind: str = Field(description="`route`, or how else the lead moved (a reassignment).")
    outcome: str
    rule: str
    account: str | None
    team: str
    rep_id: str | None
    rep_name: str | None
    method: str | None
    reason: str
    candidates: list[Candidate]
    skipped_before: list[SkippedEarlier]
    skipped: dict[str, str] = Field(description="Why each skipped rep was, by rep id.")
    trace: list[str] = Field(description="The rule walk, step by step.")
    details: dict[str, Any] = Field(description="What the decision matched on (a domain).")
    config_version: str


class CurrentAssignment(BaseModel):
    """Where the lead is now."""

    assignment_id: str
    rep_id: str | None
    rep_name: str | None
    team: str
    since: datetime


class AssignmentStep(BaseModel):
    """One assignment of the lead, in order."""

    seq: int
    assignment_id: str
    status: str
    rep_id: str | None
    rep_name: str | None
    team: str
    rule: str
    assigned_at: datetime
    closed_at: datetime | None
    close_reason: str | None


class RoutingExplained(BaseModel):
    """Why a lead went where it went."""

    lead_key: str = Field(description="The key the person is known by now.")
    asked_as: str = Field(description="The key asked for.")
    status: str
    summary: str
    current: CurrentAssignment
    decisions: list[DecisionView]
    history: list[AssignmentStep]


def _name(config: LeadflowConfig, rep_id: str | None) -> str | None:
    if rep_id is None:
        return None
    return next((rep.name for rep in config.reps if rep.id == rep_id), rep_id)


def explain(config: LeadflowConfig, decision: DecisionRecord) -> DecisionView:
    """A stored decision, with each candidate's part in it spelled out."""
    chosen, skipped = decision.rep_id, decision.skipped
    candidates = []
    part: Literal["chosen", "skipped", "available"]
    for rep_id in decision.candidates:
        if rep_id == chosen:
            part, why = "chosen", decision.reason
        elif rep_id in skipped:
            part, why = "skipped", skipped[rep_id]
        else:
            part = "available"
            method = (decision.method or "the distribution").replace("_", " ")
            why = f"could take it; {method} chose someone else"
        candidates.append(
            Candidate(rep_id=rep_id, rep_name=_name(config, rep_id), outcome=part, why=why)
        )
    # Reps skipped earlier in the walk (an account owner, a named rep) are not candidates.
    earlier = [
        SkippedEarlier(rep_id=r, rep_name=_name(config, r), why=why)
        for r, why in skipped.items()
        if r not in decision.candidates
    ]
    return DecisionView(
        assignment_id=decision.assignment_id,
        decided_at=decision.decided_at,
        kind=decision.kind,
        outcome=decision.outcome,
        rule=decision.rule,
        account=decision.account,
        team=decision.team,
        rep_id=chosen,
        rep_name=_name(config, chosen),
        method=decision.method,
        reason=decision.reason,
        candidates=candidates,
        skipped_before=earlier,
        skipped=skipped,
        trace=decision.trace,
        details=decision.details,
        config_version=decision.config_version,
    )


def summary(config: LeadflowConfig, current: Assignment, latest: DecisionRecord) -> str:
    """One sentence: where the lead is now, and why."""
    if current.closed_at is not None and current.close_reason not in (None, ""):
        state = f"closed ({current.close_reason})"
        return f"The lead is {state}; it was last with {_name(config, current.rep_id)}."
    if current.status == "queued":
        return f"Queued for team {current.team}: {latest.reason}."
    if current.status == "pooled":
        return f"Waiting in team {current.team}'s pool for a rep to claim it: {latest.reason}."
    return f"Assigned to {_name(config, current.rep_id)}: {latest.reason}."


def _step(config: LeadflowConfig, row: Assignment) -> AssignmentStep:
    return AssignmentStep(
        seq=row.seq,
        assignment_id=row.assignment_id,
        status=row.status,
        rep_id=row.rep_id,
        rep_name=_name(config, row.rep_id),
        team=row.team,
        rule=row.rule,
        assigned_at=row.assigned_at,
        closed_at=row.closed_at,
        close_reason=row.close_reason,
    )


@router.get(
    "/leads/{lead_key}/routing",
    responses={404: {"description": "No routing decision has been taken for this lead."}},
)
async def routing_decisions(
    lead_key: Annotated[str, Path(max_length=64)], session: SessionDep, runtime: RuntimeDep
) -> RoutingExplained:
    """Why the lead went where it went: each decision's rule, candidates and skipped reps.

    Any of the person's keys answers (the email's, the phone's, a merged profile's): the
    answer is the person's, under the key they are known by now (`lead_key`).
    """
    config = runtime.settings.app
    asked = lead_key
    lead_key = await repository.person(session, asked)
    decisions = await repository.decisions(session, lead_key)
    if not decisions:
        raise Problem(
            404,
            "no_routing_decision",
            f"No routing decision has been taken for lead {lead_key!r}: it has not qualified "
            "yet, or the key is wrong (it is the lead_key the intake answered with).",
        )
    assignments = await repository.history(session, lead_key)
    # The open row, else the latest not closed by a merge (as `RoutingBook.current`).
    current = next(
        (a for a in reversed(assignments) if a.closed_at is None),
        next((a for a in reversed(assignments) if a.close_reason != MERGED), assignments[-1]),
    )
    return RoutingExplained(
        lead_key=lead_key,
        asked_as=asked,
        status="closed" if current.closed_at is not None else current.status,
        summary=summary(config, current, decisions[-1]),
        current=CurrentAssignment(
            assignment_id=current.assignment_id,
            rep_id=current.rep_id,
            rep_name=_name(config, current.rep_id),
            team=current.team,
            since=current.assigned_at,
        ),
        decisions=[explain(config, d) for d in decisions],
        history=[_step(config, a) for a in assignments],
    )
