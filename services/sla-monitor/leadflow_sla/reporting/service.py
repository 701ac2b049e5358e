"""Reporting orchestration: fold events into lifecycles; build reports. Never commits."""

from __future__ import annotations

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


async def on_event(
    session: AsyncSession, event: Envelope, reporting: Reporting, now: datetime
) -> None:
    """Apply one event to its lead's lifecycle."""
    fact = lifecycle.fact_of(event, reporting)
    if fact is None:
        return
    current = await repository.lock_lifecycle(session, event.subject, now)
    await repository.save_lifecycle(session, lifecycle.apply(current, fact), now)
    LIFECYCLE_EVENTS.labels(event.type).inc()


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
