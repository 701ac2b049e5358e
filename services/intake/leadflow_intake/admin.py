"""The intake's administrative route: forgetting what its spool holds of an erased person."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from leadflow.auth import Principal, require
from leadflow_intake.api import Intake

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class Forgotten(BaseModel):
    """How many spooled webhooks were blanked."""

    forgotten: int


@router.delete("/people/{lead_key}")
async def forget_person(
    lead_key: Annotated[str, Path(min_length=1, max_length=64)],
    request: Request,
    principal: Annotated[Principal, require("admin")],
) -> Forgotten:
    """Blank the webhooks this intake's spool still holds under `lead_key`, waiting for the
    broker (a privacy erasure: scoring's `DELETE /v1/admin/people/{key}` erases the rest;
    `leadflow people erase` calls both, for each of the person's keys). How many it blanked."""
    intake: Intake = request.app.state.intake
    forgotten = await asyncio.to_thread(intake.delivery.spool.forget, {lead_key})
    log.info("spooled copies forgotten", extra={"actor": principal.name, "records": forgotten})
    return Forgotten(forgotten=forgotten)
