"""Scoring's administrative routes: erasing a person (a privacy request)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from leadflow.api_contract import problem_responses
from leadflow.auth import Principal, require
from leadflow.problems import Problem
from leadflow.processing import utcnow
from leadflow.runtime import RuntimeDep
from leadflow_scoring import privacy

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=problem_responses(404))

# What the other services do with `lead.erased`, as the answer tells the caller.
FOLLOWS = {
    "router": "deletes the assignments, routing decisions, routed lead and notifications",
    "sla-monitor": "deletes the follow-up windows, timers, outcomes and alerts",
    "reporting": "keeps the lifecycle as an anonymous count under a key of its own",
}


class ErasureAnswer(BaseModel):
    """What an erasure request did, and what the other services do after it."""

    status: Literal["erasing", "erased"] = Field(
        description="`erasing`: erased here now, the others follow; `erased`: done before."
    )
    erasure_id: str | None
    erased_at: datetime
    keys: int = Field(description="How many keys the person was known by (erased now).")
    lead_keys: list[str] = Field(description="The person's keys, for the intakes' spools.")
    then: dict[str, str] = Field(description="What each other service does, by service.")


@router.delete("/people/{lead_key}", status_code=202)
async def erase_person(
    lead_key: str,
    runtime: RuntimeDep,
    principal: Annotated[Principal, require("admin")],
) -> ErasureAnswer:
    """Erase a person everywhere, found by any of their keys (email's, phone's, a merged
    profile's).

    Scoring deletes the profile, identifiers and touches at once and publishes
    `lead.erased`; the other services erase theirs as they consume it (202). Asking again
    answers 202 with `status: erased` and when; a key scoring never knew answers 404.
    `lead_keys` are the person's keys, for the intakes' spools (`leadflow people erase`
    asks each intake to forget its spooled copies under them).
    """
    now = utcnow()
    async with runtime.sessions() as session, session.begin():
        done = await privacy.erase_person(session, lead_key, now)
    if done is None:
        raise Problem(
            404,
            "unknown_lead",
            f"No person has the key {lead_key!r}: check the key, or compute it from the "
            "email or phone with `leadflow people erase`.",
        )
    if done.status == "erasing":
        runtime.relay.wake()
        # The audit line: who erased, and which erasure (never the person's keys).
        log.info(
            "person erased",
            extra={
                "actor": principal.name,
                "erasure_id": done.erasure_id,
                "keys": len(done.keys),
            },
        )
    return ErasureAnswer(
        status=done.status,
        erasure_id=done.erasure_id or None,
        erased_at=done.erased_at,
        keys=len(done.keys),
        # Where else the caller may have to forget them: each intake's spool, by key.
        lead_keys=list(done.keys),
        then=FOLLOWS if done.status == "erasing" else {},
    )
