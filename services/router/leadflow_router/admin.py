"""The admin API: change reps at run time (out of office, caps, hours, weights) and
reassign leads by hand, audited.

Every route needs a token with the `admin` scope (leadflow.auth); changes are stored in
the database, win over the configuration, and take effect on the next decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from leadflow.api_contract import json_body
from leadflow.auth import Principal, require
from leadflow.config import LeadflowConfig
from leadflow.problems import Problem, field_errors
from leadflow.processing import utcnow
from leadflow.runtime import RuntimeDep, SessionDep
from leadflow.schedules import Absence, Shift
from leadflow_router import admin_service, roster, roster_repository
from leadflow_router.notify import NotifyOptions
from leadflow_router.service import ReassignRefused

router = APIRouter(prefix="/v1/admin", tags=["admin"])

# The caller of a change: an `admin` token or OIDC user; the audit log records its name.
Actor = Annotated[Principal, require("admin")]


def _known_rep(config: LeadflowConfig, rep_id: str) -> str:
    if not any(rep.id == rep_id for rep in config.reps):
        raise Problem(404, "unknown_rep", f"No rep with id {rep_id!r} is configured.")
    return rep_id


_Body = TypeVar("_Body", bound=BaseModel)


def _parse(model: type[_Body], body: Any) -> _Body:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise Problem(
            422, "invalid_body", "The change is not valid.", errors=field_errors(exc.errors())
        ) from exc


class ReassignIn(BaseModel):
    """A lead given by hand to a rep, and why (kept in the audit log, told to both reps)."""

    model_config = ConfigDict(extra="forbid")

    rep_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)


class EffectiveRep(BaseModel):
    """A rep's settings in force: the configuration with the run-time overrides applied."""

    active: bool
    max_per_day: int | None
    max_open: int | None
    weight: float
    working_hours: list[Shift]
    languages: list[str]
    products: list[str]
    regions: list[str]


class RepAbsence(BaseModel):
    """An out-of-office period added at run time (cancel it by its id)."""

    id: int
    start: datetime
    end: datetime
    note: str | None
    created_by: str


class RepLoad(BaseModel):
    """Leads a rep was given today (in their zone) and holds open."""

    today: int
    open: int


class RepView(BaseModel):
    """A rep as configured, as overridden, as in force now, with load and availability."""

    id: str
    name: str
    timezone: str
    teams: list[str]
    effective: EffectiveRep
    overrides: dict[str, Any] = Field(
        description="The fields set at run time (those of `PATCH /v1/admin/reps/{rep_id}`)."
    )
    out_of_office: list[Absence] = Field(description="The configured out-of-office periods.")
    absences: list[RepAbsence] = Field(description="Periods added at run time, current or later.")
    load: RepLoad
    available_now: bool
    unavailable_because: str | None


class RepList(BaseModel):
    """Every configured rep."""

    reps: list[RepView]


class HandedOver(BaseModel):
    """A lead moved outside routing: its new assignment and the one it replaced."""

    lead_key: str
    assignment_id: str
    rep_id: str | None
    team: str
    rule: str
    seq: int
    assigned_at: datetime
    previous_assignment_id: str
    previous_rep_id: str | None
    close_reason: str | None


class Reassigned(HandedOver):
    """A lead given by hand to a rep, and why."""

    reason: str


class AbsenceAdded(BaseModel):
    """An out-of-office period added, and what became of the rep's open leads."""

    id: int
    rep_id: str
    start: datetime
    end: datetime
    note: str
    redistributed: list[HandedOver] = Field(
        description="Leads handed to the team's other reps (when the team redistributes)."
    )
    kept: list[str] = Field(description="Keys of the open leads no other rep could take.")


class AuditLine(BaseModel):
    """A run-time change: who, what, when, before and after."""

    id: int
    at: datetime
    actor: str
    action: str
    rep_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditLog(BaseModel):
    """The latest run-time changes, newest first."""

    changes: list[AuditLine]


# The refusals of a route that reads its JSON body itself.
_BODY_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not valid JSON."},
    415: {"description": "The body is not application/json."},
}


def _options(request: Request) -> NotifyOptions:
    options = getattr(request.app.state, "notify_options", None)
    return options if isinstance(options, NotifyOptions) else NotifyOptions()


@router.get("/reps")
async def list_reps(_actor: Actor, session: SessionDep, runtime: RuntimeDep) -> RepList:
    """Every rep: configuration, overrides, effective settings, load and availability now."""
    config = runtime.settings.app
    reps = [rep.id for rep in config.reps]
    views = await admin_service.rep_views(session, config, reps, utcnow())
    return RepList(reps=[RepView.model_validate(view) for view in views])


@router.get("/reps/{rep_id}", responses={404: {"description": "No such rep."}})
async def get_rep(rep_id: str, _actor: Actor, session: SessionDep, runtime: RuntimeDep) -> RepView:
    """One rep: configuration, overrides, effective settings, load and availability now."""
    config = runtime.settings.app
    [view] = await admin_service.rep_views(session, config, [_known_rep(config, rep_id)], utcnow())
    return RepView.model_validate(view)


@router.patch(
    "/reps/{rep_id}",
    responses={
        404: {"description": "No such rep."},
        422: {"description": "Invalid change."},
        **_BODY_REFUSALS,
    },
    openapi_extra=json_body(roster.RepOverride),
)
async def change_rep(rep_id: str, request: Request, actor: Actor, runtime: RuntimeDep) -> RepView:
    """Override fields of a rep (active, caps, weight, working hours, skills); null reverts."""
    config = runtime.settings.app
    _known_rep(config, rep_id)
    change = _parse(roster.RepOverride, await _json(request))
    now = utcnow()
    async with runtime.sessions() as session, session.begin():
        await admin_service.change_rep(session, rep_id, change, actor.name, now)
    async with runtime.sessions() as session:
        [view] = await admin_service.rep_views(session, config, [rep_id], now)
    return RepView.model_validate(view)


@router.post(
    "/reps/{rep_id}/out-of-office",
    status_code=201,
    responses={
        404: {"description": "No such rep."},
        422: {"description": "Invalid period."},
        **_BODY_REFUSALS,
    },
    openapi_extra=json_body(roster.AbsenceIn),
)
async def add_absence(
    rep_id: str, request: Request, actor: Actor, runtime: RuntimeDep
) -> AbsenceAdded:
    """Mark a rep out of office from `start` to `end` (ISO 8601 with a zone)."""
    config = runtime.settings.app
    _known_rep(config, rep_id)
    absence = _parse(roster.AbsenceIn, await _json(request))
    async with runtime.sessions() as session, session.begin():
        absence_id, moved, stayed = await admin_service.add_absence(
            session, rep_id, absence, actor.name, utcnow(), config, _options(request)
        )
    relay = getattr(runtime, "relay", None)
    if moved and relay is not None:
        relay.wake()
    return AbsenceAdded.model_validate(
        {
            "id": absence_id,
            "rep_id": rep_id,
            **absence.model_dump(mode="json"),
            "redistributed": [admin_service.handover_view(one) for one in moved],
            "kept": stayed,
        }
    )


@router.delete(
    "/reps/{rep_id}/out-of-office/{absence_id}",
    status_code=204,
    responses={404: {"description": "No such rep or absence."}},
)
async def cancel_absence(
    rep_id: str, absence_id: int, actor: Actor, runtime: RuntimeDep
) -> Response:
    """Cancel an out-of-office period (the rep is back)."""
    _known_rep(runtime.settings.app, rep_id)
    async with runtime.sessions() as session, session.begin():
        found = await admin_service.cancel_absence(
            session, rep_id, absence_id, actor.name, utcnow()
        )
    if not found:
        raise Problem(
            404, "unknown_absence", f"Rep {rep_id!r} has no out-of-office period {absence_id}."
        )
    return Response(status_code=204)


@router.post(
    "/leads/{lead_key}/reassign",
    responses={
        404: {"description": "Unknown lead, or not assigned to anyone."},
        409: {"description": "The lead is closed (rejected, converted, won or lost)."},
        422: {"description": "Unknown rep, the same rep, a rep it cannot go to, or away."},
        **_BODY_REFUSALS,
    },
    openapi_extra=json_body(ReassignIn),
)
async def reassign_lead(
    lead_key: str, request: Request, actor: Actor, runtime: RuntimeDep
) -> Reassigned:
    """Give a lead (any of its person's keys) to another rep by hand: the assignment moves,
    the SLA window restarts for the new rep, both reps are told, the change is audited."""
    body = _parse(ReassignIn, await _json(request))
    try:
        async with runtime.sessions() as session, session.begin():
            moved = await admin_service.reassign(
                session,
                runtime.settings.app,
                lead_key,
                body.rep_id,
                body.reason,
                actor.name,
                utcnow(),
                _options(request),
            )
    except ReassignRefused as refused:
        raise Problem(refused.status, refused.code, refused.detail) from refused
    relay = getattr(runtime, "relay", None)
    if relay is not None:
        relay.wake()  # publish the reassignment now, not at the relay's next poll
    return Reassigned.model_validate({**admin_service.handover_view(moved), "reason": body.reason})


@router.get("/audit")
async def audit_log(
    _actor: Actor,
    session: SessionDep,
    rep_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditLog:
    """The latest run-time changes, newest first: who, what, when, before and after."""
    lines = await roster_repository.audit_log(session, rep_id, limit)
    return AuditLog(
        changes=[AuditLine.model_validate(line, from_attributes=True) for line in lines]
    )


async def _json(request: Request) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Problem(
            415,
            "unsupported_media_type",
            f"Send the body as application/json (got {content_type or 'no content type'}).",
        )
    try:
        return await request.json()
    except ValueError as exc:
        raise Problem(400, "invalid_json", "The body is not valid JSON.") from exc
