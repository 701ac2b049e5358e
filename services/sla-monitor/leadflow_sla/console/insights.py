"""The Reports and Team pages' numbers: reporting's reports over the leads the viewer may
see, their charts, and round-robin fairness per rep (pure, apart from `report`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.auth import Principal
from leadflow.config import LeadflowConfig
from leadflow_sla.console.charts import Bar, Pair, bar_chart, pair_chart
from leadflow_sla.reporting import domain, render, repository, roi, service
from leadflow_sla.reporting.query import ReportQuery

ReportKind = Literal["funnel", "speed", "reasons", "roi"]
REPORTS: tuple[ReportKind, ...] = ("funnel", "speed", "reasons", "roi")
BUCKET_NAMES = {
    "lt_5m": "under 5 min",
    "lt_1h": "5 min to 1 h",
    "lt_24h": "1 h to 24 h",
    "gte_24h": "24 h or more",
    # Not "never contacted": the funnel counts a lead that was accepted or won without a
    # reported contact as contacted, and a page that said both would contradict itself.
    "never": "no contact reported",
}


async def report(
    session: AsyncSession,
    config: LeadflowConfig,
    kind: ReportKind,
    query: ReportQuery,
    principal: Principal,
) -> Any:
    """One report over the leads the query covers of the teams the viewer sees, as
    reporting's API computes it (counted by the database)."""
    teams = principal.teams
    if kind == "funnel":
        return await service.funnel_report(session, query, "source", teams)
    if kind == "speed":
        return await service.speed_report(session, query, teams)
    if kind == "reasons":
        return await service.reasons_report(session, query, teams)
    return await service.roi_report(session, config.reporting, query, "segment", teams)


def csv_of(kind: ReportKind, query: ReportQuery, found: Any, now: datetime) -> str:
    """A report as the CSV `leadflow report --format csv` prints."""
    return render.render(kind, render.document(kind, query, found, now), "csv")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def money(value: float | None, currency: str) -> str:
    """An amount with its currency, or a dash."""
    return "-" if value is None else f"{value:,.2f} {currency}"


def funnel_chart(found: domain.FunnelReport) -> Any:
    """Leads at each stage, with conversion from the stage before and how many leaked."""
    bars = [
        Bar(
            s.stage,
            s.leads,
            f"{s.leads} ({_pct(s.from_previous)})" if s.from_previous is not None else str(s.leads),
            "leak" if s.leaked else "",
        )
        for s in found.stages
    ]
    return bar_chart("Funnel: leads reaching each stage", bars, "funnel")


def speed_chart(found: domain.SpeedReport) -> Any:
    """Time to first contact, in the HBR buckets."""
    bars = [
        Bar(BUCKET_NAMES.get(b.bucket, b.bucket), b.leads, f"{b.leads} ({_pct(b.share)})")
        for b in found.buckets
    ]
    return bar_chart("Speed to lead: time to first contact", bars, "speed")


def reasons_chart(found: domain.ReasonsReport) -> Any:
    """Rejection reasons, most frequent first."""
    bars = [Bar(r.reason, r.leads, f"{r.leads} ({_pct(r.share)})") for r in found.reasons]
    return bar_chart("Why sales rejected leads", bars, "reasons")


def roi_chart(found: roi.RoiReport) -> Any:
    """Per segment: the most a lead may cost, and what it costs (marked when over)."""
    pairs = [
        Pair(
            row.key,
            row.max_cost_per_lead,
            row.cost_per_lead,
            money(row.max_cost_per_lead, found.currency),
            money(row.cost_per_lead, found.currency),
            row.verdict == "over",
        )
        for row in found.rows
    ]
    return pair_chart("ROI: maximum cost per lead against cost per lead", pairs, "roi")


@dataclass(frozen=True)
class Fairness:
    """One rep's share of a team's leads over a period, against an even share."""

    team: str
    rep_id: str
    rep_name: str
    leads: int
    mqls: int
    contacted: int
    share: float | None
    even_share: float


def fairness(
    tallies: Sequence[repository.RepTally], config: LeadflowConfig, teams: Sequence[str]
) -> list[Fairness]:
    """Per team and rep: leads, MQLs and contacted leads they held over the period, and their
    share of the team's leads beside the even share a round robin aims at."""
    names = {r.id: r.name for r in config.reps}
    held = {(t.team, t.rep_id): t for t in tallies}
    per_team: Counter[str] = Counter()
    for tally in tallies:
        per_team[tally.team] += tally.leads
    rows = []
    for team in config.teams:
        if team.name not in teams:
            continue
        for rep_id in team.reps:
            found = held.get((team.name, rep_id))
            leads = found.leads if found else 0
            rows.append(
                Fairness(
                    team=team.name,
                    rep_id=rep_id,
                    rep_name=names.get(rep_id, rep_id),
                    leads=leads,
                    mqls=found.mqls if found else 0,
                    contacted=found.contacted if found else 0,
                    share=domain.rate(leads, per_team[team.name]),
                    even_share=round(1 / len(team.reps), 4),
                )
            )
    return rows
