"""The reporting consumer group: every lead event, folded into the lead's lifecycle.

Set-based: each batch's new events go to `service.apply_events` at once, in Kafka order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import topics
from leadflow.erasure import erasing
from leadflow.events import Envelope
from leadflow.processing import BatchHandler
from leadflow.runtime import ConsumerSpec, Runtime
from leadflow_sla.reporting import privacy, service


def _batch_handler(runtime: Runtime) -> BatchHandler:
    reporting = runtime.settings.app.reporting

    async def handle(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
        await service.apply_events(session, events, reporting, now)

    return erasing(handle, privacy.erase_people)


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
    batch_handler=_batch_handler,
)
