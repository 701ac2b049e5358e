"""The scoring service: consumes `leads.received`, produces `leads.scored`.

Bulk leads (imports, re-syncs) come on `leads.received.bulk` and leave on
`leads.scored.bulk`, read by a second consumer that gives way to the live one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from fastapi import APIRouter, FastAPI, HTTPException
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import topics
from leadflow.auth import require
from leadflow.events import Envelope
from leadflow.problems import install_problem_handlers
from leadflow.processing import BatchHandler
from leadflow.retention import Rule
from leadflow.runtime import ConsumerSpec, Runtime, SessionDep, consumer_service
from leadflow.settings import Settings
from leadflow.topics import Lane
from leadflow_scoring import admin, repository, service

router = APIRouter(prefix="/v1", tags=["scoring"], dependencies=[require("leads:read")])


@router.get("/leads/{lead_key}/profile")
async def lead_profile(lead_key: str, session: SessionDep) -> dict[str, object]:
    """A person's merged profile: score, grade, tier, every reason, identifiers and touches.

    Any of the person's keys works (email key, phone key, or a merged profile's key);
    the answer always carries the canonical `lead_key`.
    """
    live = await repository.live_key(session, lead_key)
    profile = await repository.profile(session, live) if live is not None else None
    if live is None or profile is None:
        raise HTTPException(404, f"No lead has the key {lead_key!r}.")
    identifiers, merged = await repository.aliases(session, live)
    history = await repository.touches(session, live)
    return {
        **{k: v for k, v in profile.items() if k != "merged_into"},
        "identifiers": identifiers,
        "merged_from": merged,
        "touches": [
            {
                "activity": t.activity,
                "source": t.source,
                "occurred_at": t.occurred_at,
                "event_id": t.event_id,
            }
            for t in history
        ],
    }


def _batch_handler(lane: Lane) -> Callable[[Runtime], BatchHandler]:
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
        accepts={"lead.received"},
        batch_handler=_batch_handler("live"),
    )
    bulk = ConsumerSpec(
        group="leadflow-scoring-bulk",
        topics=[topics.RECEIVED_BULK],
        accepts={"lead.received"},
        batch_handler=_batch_handler("bulk"),
        lane="bulk",
    )
    app = consumer_service(
        "scoring",
        settings,
        [live, bulk],
        routers=[router, admin.router],
        description=__doc__ or "",
        retention=[Rule("touches", settings.retention_touches_days, repository.prune_touches)],
    )
    install_problem_handlers(app)
    return app
