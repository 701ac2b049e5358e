"""Reporting orchestration: fold event batches into lifecycles; build reports. Never commits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.config import Reporting
from leadflow.events import Envelope
from leadflow_sla.reporting import domain, lifecycle, repository, roi
from leadflow_sla.reporting.metrics import LIFECYCLE_EVENTS
from leadflow_sla.reporting.query import Dimension, ReportQuery

CONSUMER = "leadflow-reporting"
ACCEPTS = {
    "lead.received",
    "lead.scored",
    "lead.assigned",
    "lead.reassigned",
    "lead.contacted",
    "lead.accepted",
    "lead.rejected",
    "lead.converted",
    "lead.won",
    "lead.lost",
}


async def apply_events(
    session: AsyncSession, events: Sequence[Envelope], reporting: Reporting, now: datetime
) -> None:
    """Fold a batch of events, in order, into their leads' lifecycles.

    The lifecycles the batch touches are loaded and locked at once, folded in memory, and
    written back at once: the same few statements for one event or hundreds.
    """
    facts = [
        (event, fact)
        for event in events
        if (fact := lifecycle.fact_of(event, reporting)) is not None
    ]
    if not facts:
        return
    stored = await repository.lock_lifecycles(session, {e.subject for e, _ in facts}, now)
    folded = lifecycle.fold(stored, ((event.subject, fact) for event, fact in facts))
    await repository.save_lifecycles(session, folded.values(), now)
    for type_, count in Counter(event.type for event, _ in facts).items():
        LIFECYCLE_EVENTS.labels(type_).inc(count)


async def funnel_report(
    session: AsyncSession, query: ReportQuery, by: Dimension
) -> domain.FunnelReport:
    """Funnel, MQL→SQL and conversion per `by` of the leads the query covers."""
    return domain.funnel(await repository.lifecycles(session, query), by, query.touch)


async def speed_report(session: AsyncSession, query: ReportQuery) -> domain.SpeedReport:
    """Speed to lead and hand-off-to-contact of the leads the query covers."""
    return domain.speed(await repository.lifecycles(session, query))


async def reasons_report(session: AsyncSession, query: ReportQuery) -> domain.ReasonsReport:
    """Rejection and lost reasons of the leads the query covers."""
    return domain.reasons(await repository.lifecycles(session, query))


async def costs(session: AsyncSession, reporting: Reporting) -> dict[tuple[str, str], roi.Cost]:
    """Cost per lead by (kind, name): run-time values over configured ones."""
    return roi.effective_costs(reporting, await repository.cost_overrides(session))


async def roi_report(
    session: AsyncSession, reporting: Reporting, query: ReportQuery, by: roi.CostKind
) -> roi.RoiReport:
    """Maximum cost per lead per segment or campaign, against what leads actually cost."""
    lifecycles = await repository.lifecycles(session, query)
    return roi.roi(lifecycles, reporting, by, query.touch, await costs(session, reporting))
