"""The admin API: change reps at run time (out of office, caps, hours, weights) and
reassign leads by hand, audited.

Every route needs a token with the `admin` scope (leadflow.auth); changes are stored in
the database, win over the configuration, and take effect on the next decision.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from leadflow.auth import Principal, require
from leadflow.config import LeadflowConfig
from leadflow.problems import Problem, field_errors
from leadflow.processing import utcnow
from leadflow.runtime import RuntimeDep, SessionDep
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


def _options(request: Request) -> NotifyOptions:
    options = getattr(request.app.state, "notify_options", None)
    return options if isinstance(options, NotifyOptions) else NotifyOptions()


@router.get("/reps")
async def list_reps(_actor: Actor, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Every rep: configuration, overrides, effective settings, load and availability now."""
    config = runtime.settings.app
    reps = [rep.id for rep in config.reps]
    return {"reps": await admin_service.rep_views(session, config, reps, utcnow())}


@router.get("/reps/{rep_id}", responses={404: {"description": "No such rep."}})
async def get_rep(
    rep_id: str, _actor: Actor, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """One rep: configuration, overrides, effective settings, load and availability now."""
    config = runtime.settings.app
    [view] = await admin_service.rep_views(session, config, [_known_rep(config, rep_id)], utcnow())
    return view


@router.patch(
    "/reps/{rep_id}",
    responses={404: {"description": "No such rep."}, 422: {"description": "Invalid change."}},
)
async def change_rep(
    rep_id: str, request: Request, actor: Actor, runtime: RuntimeDep
) -> dict[str, Any]:
    """Override fields of a rep (active, caps, weight, working hours, skills); null reverts."""
    config = runtime.settings.app
    _known_rep(config, rep_id)
    change = _parse(roster.RepOverride, await _json(request))
    now = utcnow()
    async with runtime.sessions() as session, session.begin():
        await admin_service.change_rep(session, rep_id, change, actor.name, now)
    async with runtime.sessions() as session:
        [view] = await admin_service.rep_views(session, config, [rep_id], now)
    return view


@router.post(
    "/reps/{rep_id}/out-of-office",
    status_code=201,
    responses={404: {"description": "No such rep."}, 422: {"description": "Invalid period."}},
)
async def add_absence(
    rep_id: str, request: Request, actor: Actor, runtime: RuntimeDep
) -> dict[str, Any]:
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
    return {
        "id": absence_id,
        "rep_id": rep_id,
        **absence.model_dump(mode="json"),
        "redistributed": [admin_service.handover_view(one) for one in moved],
        "kept": stayed,
    }


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
    },
)
async def reassign_lead(
    lead_key: str, request: Request, actor: Actor, runtime: RuntimeDep
) -> dict[str, Any]:
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
    return {**admin_service.handover_view(moved), "reason": body.reason}


@router.get("/audit")
async def audit_log(
    _actor: Actor,
    session: SessionDep,
    rep_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The latest run-time changes, newest first: who, what, when, before and after."""
    return {"changes": await roster_repository.audit_log(session, rep_id, limit)}


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
