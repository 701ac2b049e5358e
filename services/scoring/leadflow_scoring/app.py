"""The scoring service: consumes `leads.received`, produces `leads.scored`."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, FastAPI, HTTPException
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import topics
from leadflow.events import Envelope
from leadflow.processing import EventHandler
from leadflow.runtime import ConsumerSpec, Runtime, SessionDep, consumer_service
from leadflow.settings import Settings
from leadflow_scoring import repository, service

router = APIRouter(prefix="/v1", tags=["scoring"])


@router.get("/leads/{lead_key}/profile")
async def lead_profile(lead_key: str, session: SessionDep) -> dict[str, object]:
    """A person's merged profile, current score and tier."""
    profile = await repository.profile(session, lead_key)
    if profile is None:
        raise HTTPException(404, f"No lead has the key {lead_key!r}.")
    return profile


def _handler(runtime: Runtime) -> EventHandler:
    model = runtime.settings.app.scoring

    async def handle(session: AsyncSession, event: Envelope, now: datetime) -> None:
        await service.score_received(session, event, model, now)

    return handle


def create_app(settings: Settings) -> FastAPI:
    """The scoring service's ASGI app."""
    spec = ConsumerSpec(
        group="leadflow-scoring",
        topics=[topics.RECEIVED],
        accepts={"lead.received"},
        handler=_handler,
    )
    return consumer_service(
        "scoring", settings, [spec], routers=[router], description=__doc__ or ""
    )
