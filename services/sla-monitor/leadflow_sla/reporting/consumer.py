"""The reporting consumer group: every lead event, folded into the lead's lifecycle.

Set-based: each run of a batch's new events goes to `service.apply_events` at once, in
Kafka order; a run of erasures (`lead.erased`) to `privacy.erase_people`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import get_args

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import topics
from leadflow.erasure import ERASED, erasing
from leadflow.events import ActivityKind, Envelope
from leadflow.processing import BatchHandler
from leadflow.runtime import ConsumerSpec, Runtime, ready_made
from leadflow_sla.reporting import privacy, service

# What a lifecycle is folded from: arrival, score, merges, hand-offs and every outcome.
FOLDED = (
    "lead.received",
    "lead.scored",
    "lead.merged",
    "lead.assigned",
    "lead.reassigned",
    *(f"lead.{kind}" for kind in get_args(ActivityKind)),
)


def _batch_handler(runtime: Runtime) -> BatchHandler:
    reporting = runtime.settings.app.reporting

    async def handle(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
        await service.apply_events(session, events, reporting, now)

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
    handlers={
        **dict.fromkeys(FOLDED, _batch_handler),
        ERASED: ready_made(erasing(privacy.erase_people)),
    },
)
