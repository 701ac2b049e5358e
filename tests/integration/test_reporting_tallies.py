"""Reports counted by the database equal the same reports folded over the lifecycles, on
SQLite and PostgreSQL.

A generated book of leads (several segments, sources and campaigns, some missing; ties in
arrival and response times, responses exactly on the buckets' bounds and before the lead
was ready; rejections whose reasons differ only in case and spacing, lost and won deals,
with and without a reported profit; contacts after the period; merged and erased people)
goes through reporting's own fold. Each report is then built both ways, for several
periods, filters, touches, breakdowns and a viewer who sees one team, and compared as the
JSON document and every CSV table the API and the console serve. Tier shares, counted from
the few columns they read rather than the database, are compared the same way, per day,
week and month.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from leadflow.config import load_config
from leadflow.db.engine import session_factory
from leadflow.events import (
    Envelope,
    Lead,
    LeadActivity,
    LeadAssigned,
    LeadErased,
    LeadMerged,
    LeadReceived,
    LeadScored,
    new_event,
)
from leadflow_sla.reporting import domain, privacy, render, repository, roi, service, tiers
from leadflow_sla.reporting.query import Dimension, ReportQuery, make_query
from leadflow_sla.reporting.render import Kind
from tests.fixtures.stack import CONFIG

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 31, tzinfo=UTC)
REPORTING = load_config(CONFIG).reporting
REPS = {"enterprise": ("ana", "ben", "chloe"), "smb": ("dev", "emma", "felix")}
SOURCES = ("google", "linkedin", "ebook", None)
CAMPAIGNS = ("spring-webinar", "nurture-email", "Spring-Webinar", None)
SIZES = (20, 500, 1500, None)
REASONS = ("No budget", "no  budget", "NO BUDGET ", "timing", "", None, "wrong person")
# Response times in seconds: ties, the buckets' bounds exactly, and contacts before the
# lead was ready (negative: counted as no wait).
WAITS = (0, 59.5, 120, 120, 299.999999, 300, 300.000001, 3599, 3600, 86_399.5, 86_400, -90, 5e5)


def _event(kind: str, data: Any, at: datetime, event_id: str) -> Envelope:
    return new_event(kind, data, source="/t", time=at, event_id=event_id)


def _received(key: str, at: datetime, rng: random.Random, n: int) -> Envelope:
    utm = {k: v for k, v in (("source", rng.choice(SOURCES)),) if v}
    size = rng.choice(SIZES)
    lead: dict[str, Any] = {"email": f"{key}@buyer.example", "utm": utm}
    if size is not None:
        lead["company"] = {"size": size}
    if campaign := rng.choice(CAMPAIGNS):
        lead["campaign"] = campaign
    data = LeadReceived(
        lead_key=key,
        source=rng.choice(("web", "ivr")),
        source_kind="standard",
        delivery_id=f"d-{key}-{n}",
        received_at=at,
        lead=Lead.model_validate(lead),
    )
    return _event("lead.received", data, at, f"r-{key}-{n}")


def _scored(key: str, at: datetime, touch_at: datetime, qualified: bool) -> Envelope:
    data = LeadScored(
        lead_key=key,
        model_version="v",
        score=80 if qualified else 20,
        fit=40,
        engagement=40,
        tier="mql" if qualified else "nurture",
        qualified=qualified,
        newly_qualified=qualified,
        reasons=[],
        scored_at=at,
        received_at=touch_at,
        source="web",
        lead=Lead(),
    )
    return _event("lead.scored", data, at, f"s-{key}-{at.isoformat()}")


def _assigned(key: str, at: datetime, team: str, rep: str, *, again: bool) -> Envelope:
    data = LeadAssigned(
        lead_key=key,
        assignment_id=f"a-{key}-{rep}-{again}",
        rep_id=rep,
        rep_name=rep,
        team=team,
        rule="r",
        tier="mql",
        reason="",
        assigned_at=at,
        received_at=at,
        previous_rep_ids=["someone"] if again else [],
    )
    kind = "lead.reassigned" if again else "lead.assigned"
    return _event(kind, data, at, f"a-{key}-{rep}-{again}")


def _crm(kind: str, key: str, at: datetime, **fields: Any) -> Envelope:
    data = LeadActivity(lead_key=key, activity=kind, occurred_at=at, source="crm", **fields)
    return _event(f"lead.{kind}", data, at, f"{kind}-{key}-{at.isoformat()}")


def _story(key: str, rng: random.Random) -> list[Envelope]:
    """One person's events: touches, scoring, hand-offs and CRM outcomes, some missing."""
    # Arrivals on a grid of whole minutes, so that several leads arrive at the same time.
    first = T0 + timedelta(minutes=rng.randrange(-3 * 24 * 60, 40 * 24 * 60, 30))
    events = [_received(key, first, rng, 0)]
    if rng.random() < 0.3:
        events.append(_received(key, first + timedelta(days=rng.choice((0, 1, 3))), rng, 1))
    ready = first
    if rng.random() < 0.8:
        qualified = rng.random() < 0.7
        ready = first + timedelta(seconds=rng.choice((0, 30, 600)))
        events.append(_scored(key, ready, first, qualified))
    team = rng.choice(tuple(REPS))
    if rng.random() < 0.7:
        handed = ready + timedelta(seconds=rng.choice((0, 5, 45)))
        events.append(_assigned(key, handed, team, rng.choice(REPS[team]), again=False))
        if rng.random() < 0.15:
            later = handed + timedelta(minutes=20)
            events.append(_assigned(key, later, team, rng.choice(REPS[team]), again=True))
    if rng.random() < 0.75:
        contacted = ready + timedelta(seconds=rng.choice(WAITS))
        events.append(_crm("contacted", key, contacted))
        if rng.random() < 0.2:
            events.append(_crm("contacted", key, contacted + timedelta(days=60)))
        outcome = rng.random()
        later = contacted + timedelta(hours=rng.choice((1, 5, 24 * 45)))
        if outcome < 0.3:
            events.append(_crm("rejected", key, later, reason=rng.choice(REASONS)))
        elif outcome < 0.8:
            events.append(_crm("accepted", key, later))
            if rng.random() < 0.7:
                events.append(_crm("converted", key, later + timedelta(days=1)))
            close = later + timedelta(days=rng.choice((2, 50)))
            if rng.random() < 0.5:
                amount = rng.choice((1000.0, 2500.5, 12_345.67, 99.99))
                profit = rng.choice((None, None, amount * 0.3, 400.25))
                events.append(_crm("won", key, close, amount=amount, profit=profit))
            if rng.random() < 0.3:
                lost_at = close + timedelta(hours=1)
                events.append(_crm("lost", key, lost_at, reason=rng.choice(REASONS)))
    return events


async def _book(engine: AsyncEngine, people: int = 240) -> None:
    """Fold the generated book through reporting, then merge and erase some people."""
    rng = random.Random(20261202)
    events = [event for i in range(people) for event in _story(f"lk_{i:04d}", rng)]
    rng.shuffle(events)
    merges = [
        LeadMerged(
            survivor=f"lk_{i:04d}",
            absorbed=[f"lk_{i + 1:04d}"],
            identifiers=[f"lk_{i:04d}", f"lk_{i + 1:04d}"],
            merged_at=T0,
        )
        for i in range(0, 60, 6)
    ]
    events += [_event("lead.merged", m, T0, f"m-{m.survivor}") for m in merges]
    async with session_factory(engine)() as session, session.begin():
        for start in range(0, len(events), 97):
            await service.apply_events(session, events[start : start + 97], REPORTING, NOW)
        erased = [
            LeadErased(lead_key=f"lk_{i:04d}", keys=[f"lk_{i:04d}"], erased_at=NOW)
            for i in (0, 100, 105, 110, 115, 120)
        ]
        await privacy.erase_people(session, erased, NOW)


QUERIES = [
    make_query(REPORTING),
    make_query(REPORTING, start="2026-11-01", end="2026-11-30"),
    make_query(REPORTING, start="2026-11-05", end="2026-11-20", touch="last"),
    make_query(REPORTING, segment="smb"),
    make_query(REPORTING, source="google", touch="last"),
    make_query(REPORTING, team="enterprise", start="2026-11-03"),
    make_query(REPORTING, campaign="spring-webinar"),
    make_query(REPORTING, rep="ana"),
    make_query(REPORTING, start="2027-06-01"),
]
VIEWERS = [None, {"smb"}, {"enterprise", "smb"}, set()]


async def _folded(
    session: AsyncSession, query: ReportQuery, teams: set[str] | None, kind: Kind, by: str
) -> Any:
    """The report as computed before the database counted it: over every lifecycle."""
    leads = await repository.lifecycles(session, query, teams)
    if kind == "funnel":
        return domain.funnel(leads, cast(Dimension, by), query.touch)
    if kind == "speed":
        return domain.speed(leads)
    if kind == "reasons":
        return domain.reasons(leads)
    costs = await service.costs(session, REPORTING)
    return roi.roi(leads, REPORTING, cast(roi.CostKind, by), query.touch, costs)


async def _counted(
    session: AsyncSession, query: ReportQuery, teams: set[str] | None, kind: Kind, by: str
) -> Any:
    if kind == "funnel":
        return await service.funnel_report(session, query, cast(Dimension, by), teams)
    if kind == "speed":
        return await service.speed_report(session, query, teams)
    if kind == "reasons":
        return await service.reasons_report(session, query, teams)
    return await service.roi_report(session, REPORTING, query, cast(roi.CostKind, by), teams)


REPORTS: list[tuple[Kind, str]] = [
    *(("funnel", by) for by in ("source", "campaign", "segment", "team", "rep")),
    ("speed", ""),
    ("reasons", ""),
    ("roi", "segment"),
    ("roi", "campaign"),
]


@pytest.mark.parametrize(("kind", "by"), REPORTS, ids=[f"{k}-{b}" if b else k for k, b in REPORTS])
async def test_counted_reports_equal_folded_ones(engine: AsyncEngine, kind: Kind, by: str) -> None:
    await _book(engine)
    async with session_factory(engine)() as session:
        assert len(await repository.lifecycles(session, QUERIES[0])) > 150
        compared = 0
        for query in QUERIES:
            for teams in VIEWERS:
                folded = await _folded(session, query, teams, kind, by)
                counted = await _counted(session, query, teams, kind, by)
                expected = render.document(kind, query, folded, NOW)
                found = render.document(kind, query, counted, NOW)
                assert found == expected, (query, teams)
                for table in render.table_names(kind):
                    shown = render.render(kind, found, "csv", table)
                    assert shown == render.render(kind, expected, "csv", table)
                compared += 1
        assert compared == len(QUERIES) * len(VIEWERS)


# Targets the book's shares straddle, so that every status shows: about half the leads
# qualify, a quarter are nurtured, the rest unscored; nobody is on watch.
TIER_TARGETS = REPORTING.model_copy(
    update={"tier_targets": {"mql": 0.5, "watch": 0.02, "nurture": 0.3}, "tier_min_leads": 4}
)
TIER_BREAKDOWNS: list[tiers.TierDimension] = ["all", "source", "campaign"]


@pytest.mark.parametrize("period", ["day", "week", "month"])
async def test_tier_shares_from_narrow_rows_equal_those_folded_over_lifecycles(
    engine: AsyncEngine, period: tiers.Period
) -> None:
    await _book(engine)
    statuses: set[str] = set()
    async with session_factory(engine)() as session:
        for query in QUERIES:
            for teams in VIEWERS:
                leads = await repository.lifecycles(session, query, teams)
                rows = await repository.tier_leads(session, query, teams)
                assert len(rows) == len(leads), (query, teams)
                for by in TIER_BREAKDOWNS:
                    folded = tiers.tiers(leads, TIER_TARGETS, period, by, query.touch)
                    counted = tiers.tiers(rows, TIER_TARGETS, period, by, query.touch)
                    expected = render.document("tiers", query, folded, NOW)
                    assert render.document("tiers", query, counted, NOW) == expected
                    statuses |= {row.status for row in counted.rows}
            for by in TIER_BREAKDOWNS:
                # What the API, the console and the command serve.
                served = await service.tiers_report(session, TIER_TARGETS, query, period, by)
                leads = await repository.lifecycles(session, query)
                folded = tiers.tiers(leads, TIER_TARGETS, period, by, query.touch)
                found = render.document("tiers", query, served, NOW)
                expected = render.document("tiers", query, folded, NOW)
                assert found == expected, (query, by)
                for table in render.table_names("tiers"):
                    shown = render.render("tiers", found, "csv", table)
                    assert shown == render.render("tiers", expected, "csv", table)
    assert statuses == {"on target", "above", "below", "too few leads", "no target"}


async def test_the_book_has_what_the_comparison_needs(engine: AsyncEngine) -> None:
    """The generated book holds the cases the comparison is about (else it proves little)."""
    await _book(engine)
    async with session_factory(engine)() as session:
        leads = await repository.lifecycles(session, QUERIES[0])
        speed = await service.speed_report(session, QUERIES[0])
        reasons = await service.reasons_report(session, QUERIES[0])
    waits = [domain.response_micros(lc) for lc in leads]
    assert waits.count(0) > 1
    assert waits.count(300 * 10**6) >= 1
    assert len({lc.first_touch_at for lc in leads}) < len(leads)
    assert any(lc.lead_key.startswith(privacy.ANONYMOUS_PREFIX) for lc in leads)
    keys = {lc.lead_key for lc in leads}
    assert "lk_0006" in keys
    assert "lk_0007" not in keys
    assert any(lc.touches > 1 for lc in leads)
    assert any(lc.first_campaign is None for lc in leads)
    assert len({lc.first_segment for lc in leads}) >= 3
    assert any(lc.first_touch_at and lc.first_touch_at < T0 for lc in leads)
    assert all(bucket.leads for bucket in speed.buckets)
    assert reasons.rejected
    assert reasons.lost
    assert any(row.reason == "no budget" and row.leads >= 3 for row in reasons.reasons)
    assert any(lc.won_at and lc.revenue_without_profit and lc.reported_profit for lc in leads)
    assert {tiers.tier_of(lc) for lc in leads} == {"mql", "nurture", "unscored"}
    assert any(lc.tier == "nurture" and lc.mql_at for lc in leads)
    assert any(lc.first_source != lc.last_source for lc in leads)
    assert any(lc.last_campaign is None for lc in leads)
