"""The reporting consumer group: every lead event, folded into the lead's lifecycle."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import topics
from leadflow.events import Envelope
from leadflow.processing import EventHandler
from leadflow.runtime import ConsumerSpec, Runtime
from leadflow_sla.reporting import service


def _handler(runtime: Runtime) -> EventHandler:
    reporting = runtime.settings.app.reporting

    async def handle(session: AsyncSession, event: Envelope, now: datetime) -> None:
        await service.on_event(session, event, reporting, now)

    return handle


REPORTING_CONSUMER = ConsumerSpec(
    group=service.CONSUMER,
    # Both lanes: imported leads are reported like any other (reporting is off the hot path).
    topics=[
        topics.RECEIVED,
        topics.SCORED,
        topics.ASSIGNED,
        topics.ACTIVITY,
        topics.RECEIVED_BULK,
        topics.SCORED_BULK,
    ],
    accepts=service.ACCEPTS,
    handler=_handler,
)
