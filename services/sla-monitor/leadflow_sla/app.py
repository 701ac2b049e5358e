"""The SLA monitor: follow-up timers from `leads.assigned`, alerts on `leads.alerts`."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import topics
from leadflow.events import Envelope
from leadflow.processing import EventHandler, utcnow
from leadflow.runtime import ConsumerSpec, Runtime, SessionDep, consumer_service
from leadflow.settings import Settings
from leadflow_sla import domain, repository, service
from leadflow_sla.metrics import OPEN_TIMERS
from leadflow_sla.reporting import api as reporting_api
from leadflow_sla.reporting.consumer import REPORTING_CONSUMER
from leadflow_sla.settings import SlaSettings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["sla"])


@router.get("/sla/open")
async def open_leads(session: SessionDep, team: str | None = None) -> dict[str, Any]:
    """Open follow-up windows, soonest due first, with how overdue each one is."""
    now = utcnow()
    timers = await repository.open_by_team(session, team)
    return {
        "now": now,
        "open": [
            {**t, "overdue": t["due_at"] <= now, "age_s": (now - t["assigned_at"]).total_seconds()}
            for t in timers
        ],
    }


def _handler(runtime: Runtime) -> EventHandler:
    config = runtime.settings.app

    async def handle(session: AsyncSession, event: Envelope, now: datetime) -> None:
        await service.on_event(session, event, config, now)

    return handle


async def fire_timers(runtime: Runtime) -> None:
    """Fire due timers forever; each firing commits with its outbox row, then relays."""
    config = runtime.settings.app
    router_url = SlaSettings().router_url
    while True:
        try:
            async with runtime.sessions() as session, session.begin():
                fired = await service.fire_due(session, config, router_url, utcnow())
                open_count = await repository.count_open(session)
            OPEN_TIMERS.set(open_count)
            if fired:
                runtime.relay.wake()
                continue
        except (OperationalError, InterfaceError):
            log.warning("database unavailable; timers will fire when it is back")
        await asyncio.sleep(runtime.settings.sla_poll_s)


def create_app(settings: Settings) -> FastAPI:
    """The SLA monitor's ASGI app."""
    spec = ConsumerSpec(
        group="leadflow-sla-monitor",
        topics=[topics.ASSIGNED, topics.ACTIVITY],
        accepts={"lead.assigned", "lead.reassigned", *domain.STOPPING_ACTIVITIES},
        handler=_handler,
    )
    return consumer_service(
        "sla-monitor",
        settings,
        [spec, REPORTING_CONSUMER],
        routers=[router, reporting_api.router],
        background=[fire_timers],
        description=__doc__ or "",
    )
