"""The router: consumes `leads.scored`, produces `leads.assigned`, explains every decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import topics
from leadflow.events import Envelope
from leadflow.processing import EventHandler
from leadflow.runtime import ConsumerSpec, Runtime, SessionDep, consumer_service
from leadflow.settings import Settings
from leadflow_router import repository, service

router = APIRouter(prefix="/v1", tags=["routing"])


@router.get("/leads/{lead_key}/routing")
async def routing_decisions(lead_key: str, session: SessionDep) -> dict[str, Any]:
    """Why the lead went where it went: each decision's rule, candidates and skipped reps."""
    decisions = await repository.decisions(session, lead_key)
    if not decisions:
        raise HTTPException(404, f"No routing decision has been taken for lead {lead_key!r}.")
    return {"lead_key": lead_key, "decisions": decisions}


def _handler(runtime: Runtime) -> EventHandler:
    config = runtime.settings.app

    async def handle(session: AsyncSession, event: Envelope, now: datetime) -> None:
        await service.route_scored(session, event, config, now)

    return handle


def create_app(settings: Settings) -> FastAPI:
    """The router's ASGI app."""
    spec = ConsumerSpec(
        group="leadflow-router", topics=[topics.SCORED], accepts={"lead.scored"}, handler=_handler
    )
    return consumer_service("router", settings, [spec], routers=[router], description=__doc__ or "")
