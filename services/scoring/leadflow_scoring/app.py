"""The scoring service: consumes `leads.received`, produces `leads.scored`.

Bulk leads (imports, re-syncs) come on `leads.received.bulk` and leave on
`leads.scored.bulk`, read by a second consumer that gives way to the live one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import topics
from leadflow.api_contract import problem_responses
from leadflow.auth import require
from leadflow.events import Envelope, ScoreReason, Tier, TouchPoint
from leadflow.problems import Problem
from leadflow.processing import BatchHandler
from leadflow.retention import Rule
from leadflow.runtime import ConsumerSpec, MakeHandler, Runtime, SessionDep, consumer_service
from leadflow.settings import Settings
from leadflow.topics import Lane
from leadflow_scoring import admin, repository, service

router = APIRouter(
    prefix="/v1",
    tags=["scoring"],
    dependencies=[require("leads:read")],
    responses=problem_responses(404),
)


class ProfileTouch(BaseModel):
    """One thing the person did, as scoring kept it."""

    activity: str
    source: str
    occurred_at: datetime
    event_id: str


class LeadProfile(BaseModel):
    """A person's merged profile, as scoring keeps it."""

    lead_key: str = Field(description="The key the person is known by now.")
    fields: dict[str, Any] = Field(description="The lead's fields, merged from every event.")
    first_source: str
    last_source: str
    first_seen_at: datetime
    last_seen_at: datetime
    score: int
    fit: int
    engagement: int
    tier: Tier
    grade: str
    model_version: str
    qualified_at: datetime | None
    updated_at: datetime
    reasons: list[ScoreReason]
    first_touch: TouchPoint | None
    last_touch: TouchPoint | None
    identifiers: list[str] = Field(description="The email's and phone's keys of the person.")
    merged_from: list[str] = Field(description="Keys of the profiles merged into this one.")
    touches: list[ProfileTouch] = Field(description="Every touch kept, oldest first.")


@router.get("/leads/{lead_key}/profile")
async def lead_profile(lead_key: str, session: SessionDep) -> LeadProfile:
    """A person's merged profile: score, grade, tier, every reason, identifiers and touches.

    Any of the person's keys works (email key, phone key, or a merged profile's key);
    the answer always carries the canonical `lead_key`.
    """
    live = await repository.live_key(session, lead_key)
    profile = await repository.profile(session, live) if live is not None else None
    if live is None or profile is None:
        raise Problem(404, "unknown_lead", f"No lead has the key {lead_key!r}.")
    identifiers, merged = await repository.aliases(session, live)
    history = await repository.touches(session, live)
    return LeadProfile.model_validate(
        {
            **{k: v for k, v in asdict(profile).items() if k != "merged_into"},
            "identifiers": identifiers,
            "merged_from": merged,
            "touches": [
                ProfileTouch(
                    activity=t.activity,
                    source=t.source,
                    occurred_at=t.occurred_at,
                    event_id=t.event_id,
                )
                for t in history
            ],
        }
    )


def _batch_handler(lane: Lane) -> MakeHandler:
    def make(runtime: Runtime) -> BatchHandler:
        model, keys = runtime.settings.app.scoring, runtime.settings.lead_keys()

        async def handle(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
            await service.score_events(session, events, model, keys, now, lane)

        return handle

    return make


def create_app(settings: Settings) -> FastAPI:
    """The scoring service's ASGI app."""
    live = ConsumerSpec(
        group="leadflow-scoring",
        topics=[topics.RECEIVED],
        handlers={"lead.received": _batch_handler("live")},
    )
    bulk = ConsumerSpec(
        group="leadflow-scoring-bulk",
        topics=[topics.RECEIVED_BULK],
        handlers={"lead.received": _batch_handler("bulk")},
        lane="bulk",
    )
    return consumer_service(
        "scoring",
        settings,
        [live, bulk],
        routers=[router, admin.router],
        description=__doc__ or "",
        retention=[Rule("touches", settings.retention_touches_days, repository.prune_touches)],
    )
