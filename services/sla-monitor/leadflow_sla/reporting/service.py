"""Reporting orchestration: fold event batches into lifecycles; build reports. Never commits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import aliases
from leadflow.config import Reporting
from leadflow.events import Envelope, LeadActivity
from leadflow_sla.reporting import domain, lifecycle, people, repository, roi, tallies, tiers
from leadflow_sla.reporting.metrics import LIFECYCLE_EVENTS
from leadflow_sla.reporting.query import Dimension, ReportQuery

CONSUMER = "leadflow-reporting"
# Reporting's rows in `lead_aliases`.
ALIASES = "reporting"


async def apply_events(
    session: AsyncSession, events: Sequence[Envelope], reporting: Reporting, now: datetime
) -> None:
    """Fold a batch of events, in order, into their people's lifecycles.

    Each event is about the person one of its keys names now (an outcome may name the
    person by email or phone): the lifecycles of the keys the batch names are locked at
    once, their aliases read, the lifecycles of the people they name now locked too, all
    folded in memory with the merges the batch brings, and written back at once: the same
    few statements for one event or hundreds.
    """
    steps: list[people.Step] = []
    counted: Counter[str] = Counter()
    for event in events:
        merge = aliases.merge_of(event.data)
        fact = lifecycle.fact_of(event, reporting)
        if merge is not None:
            steps.append(merge)
        if fact is not None:
            steps.append((keys_named(event), fact))
        if merge is not None or fact is not None:
            counted[event.type] += 1
    if not steps:
        return
    named = {key for step in steps for key in _keys(step)}
    # Locked before the aliases are read: a merge another consumer is committing holds
    # these rows, so the aliases read next already include it.
    stored = await repository.lock_lifecycles(session, named, now)
    book = await aliases.load(session, ALIASES, named)
    if persons := set(book.resolve(named).values()) - named:
        stored |= await repository.lock_lifecycles(session, persons, now)
    folded = people.fold(stored, steps, book)
    await aliases.save(session, ALIASES, book)
    await repository.save_lifecycles(session, folded.lifecycles.values(), now)
    await repository.delete_lifecycles(session, folded.dropped)
    for type_, count in counted.items():
        LIFECYCLE_EVENTS.labels(type_).inc(count)


def keys_named(event: Envelope) -> list[str]:
    """The keys an event names its person by, best first: a CRM outcome's identifiers
    (lead key, email's, phone's), else the event's subject."""
    data = event.data
    if isinstance(data, LeadActivity) and data.identifiers:
        return list(data.identifiers)
    return [event.subject]


def _keys(step: people.Step) -> set[str]:
    if isinstance(step, aliases.Merge):
        return step.named()
    return {step[0]} if isinstance(step[0], str) else set(step[0])


async def person_key(session: AsyncSession, lead_key: str) -> str:
    """The key reports know the person known by `lead_key` by now."""
    return (await aliases.resolve(session, ALIASES, [lead_key]))[lead_key]


async def funnel_report(
    session: AsyncSession,
    query: ReportQuery,
    by: Dimension,
    teams: Collection[str] | None = None,
) -> domain.FunnelReport:
    """Funnel, MQL→SQL and conversion per `by` of the leads the query covers (of `teams`
    alone when given)."""
    return domain.funnel_of(await tallies.stage_tallies(session, query, by, teams), by)


async def speed_report(
    session: AsyncSession, query: ReportQuery, teams: Collection[str] | None = None
) -> domain.SpeedReport:
    """Speed to lead and hand-off-to-contact of the leads the query covers."""
    return domain.speed_of(await tallies.speed_tally(session, query, teams))


async def reasons_report(
    session: AsyncSession, query: ReportQuery, teams: Collection[str] | None = None
) -> domain.ReasonsReport:
    """Rejection and lost reasons of the leads the query covers."""
    return domain.reasons_of(await tallies.reason_tally(session, query, teams))


async def costs(session: AsyncSession, reporting: Reporting) -> dict[tuple[str, str], roi.Cost]:
    """Cost per lead by (kind, name): run-time values over configured ones."""
    return roi.effective_costs(reporting, await repository.cost_overrides(session))


async def roi_report(
    session: AsyncSession,
    reporting: Reporting,
    query: ReportQuery,
    by: roi.CostKind,
    teams: Collection[str] | None = None,
) -> roi.RoiReport:
    """Maximum cost per lead per segment or campaign, against what leads actually cost."""
    counted = await tallies.segment_tallies(session, query, by, teams)
    return roi.roi_of(counted, reporting, by, await costs(session, reporting))


async def tiers_report(
    session: AsyncSession,
    reporting: Reporting,
    query: ReportQuery,
    period: tiers.Period,
    by: tiers.TierDimension,
) -> tiers.TiersReport:
    """Each tier's share of the leads per period and source or campaign, against targets,
    counted from the few columns tier shares read (no lifecycle is built)."""
    leads = await repository.tier_leads(session, query)
    return tiers.tiers(leads, reporting, period, by, query.touch)
