"""`/v1/reports/...`: funnel, speed to lead, reasons, ROI and tier shares as JSON; costs per
lead (admin)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from leadflow.api_contract import problem_responses
from leadflow.auth import require
from leadflow.config import Reporting
from leadflow.problems import Problem
from leadflow.processing import utcnow
from leadflow.runtime import RuntimeDep, SessionDep
from leadflow_sla.reporting import documents, domain, render, repository, service, tiers
from leadflow_sla.reporting.metrics import COSTS_CHANGED
from leadflow_sla.reporting.query import (
    Dimension,
    QueryError,
    ReportQuery,
    Touchpoint,
    make_query,
)
from leadflow_sla.reporting.roi import CostKind

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=problem_responses(422))

# Reports need `reports:read`; changing a cost needs `admin`.
READ = require("reports:read")
AdminDep = require("admin")


def reporting_config(runtime: RuntimeDep) -> Reporting:
    """The reporting section of the running configuration."""
    return runtime.settings.app.reporting


ReportingDep = Annotated[Reporting, Depends(reporting_config)]


def report_query(
    reporting: ReportingDep,
    start: Annotated[
        str | None, Query(alias="from", description="First day (2026-11-01) or ISO time, UTC.")
    ] = None,
    end: Annotated[
        str | None, Query(alias="to", description="Last day (included) or ISO time (excluded).")
    ] = None,
    source: Annotated[str | None, Query(max_length=128)] = None,
    campaign: Annotated[str | None, Query(max_length=200)] = None,
    segment: Annotated[str | None, Query(max_length=64)] = None,
    team: Annotated[str | None, Query(max_length=64)] = None,
    rep: Annotated[str | None, Query(max_length=64)] = None,
    touch: Annotated[
        Touchpoint, Query(description="Attribute source, campaign and segment to this touch.")
    ] = "first",
) -> ReportQuery:
    """The checked period and filters of a report request (422 with the field otherwise)."""
    try:
        return make_query(
            reporting,
            start=start,
            end=end,
            source=source,
            campaign=campaign,
            segment=segment,
            team=team,
            rep=rep,
            touch=touch,
        )
    except QueryError as exc:
        raise Problem(
            422,
            "invalid_query",
            "The report's query is not valid.",
            errors=[{"field": f"query.{exc.field}", "message": str(exc)}],
        ) from exc


QueryDep = Annotated[ReportQuery, Depends(report_query)]


@router.get("/funnel", dependencies=[READ], response_model=documents.FunnelDocument)
async def funnel(session: SessionDep, query: QueryDep, by: Dimension = "source") -> dict[str, Any]:
    """Stage counts, stage-to-stage conversion and leakage, MQL→SQL, conversion per `by`."""
    report = await service.funnel_report(session, query, by)
    return render.document("funnel", query, report, utcnow())


@router.get("/speed", dependencies=[READ], response_model=documents.SpeedDocument)
async def speed(session: SessionDep, query: QueryDep) -> dict[str, Any]:
    """Speed to lead (median, p90, buckets), hand-off to first contact, per rep."""
    report = await service.speed_report(session, query)
    return render.document("speed", query, report, utcnow())


@router.get("/reasons", dependencies=[READ], response_model=documents.ReasonsDocument)
async def reasons(session: SessionDep, query: QueryDep) -> dict[str, Any]:
    """Rejection (screening) reasons ranked, and lost-deal reasons."""
    report = await service.reasons_report(session, query)
    return render.document("reasons", query, report, utcnow())


@router.get("/roi", dependencies=[READ], response_model=documents.RoiDocument)
async def roi(
    session: SessionDep, reporting: ReportingDep, query: QueryDep, by: CostKind = "segment"
) -> dict[str, Any]:
    """Maximum cost per lead per segment or campaign, flagged where leads cost more."""
    report = await service.roi_report(session, reporting, query, by)
    return render.document("roi", query, report, utcnow())


@router.get("/tiers", dependencies=[READ], response_model=documents.TiersDocument)
async def tier_shares(
    session: SessionDep,
    reporting: ReportingDep,
    query: QueryDep,
    period: tiers.Period = "week",
    by: tiers.TierDimension = "all",
) -> dict[str, Any]:
    """Each tier's share of the leads per period (and source or campaign), against the
    targets in `reporting.tier_targets`, drift beyond the tolerance flagged."""
    report = await service.tiers_report(session, reporting, query, period, by)
    return render.document("tiers", query, report, utcnow())


@router.get(
    "/leads/{lead_key}",
    dependencies=[READ],
    response_model=documents.LeadLifecycle,
    responses=problem_responses(404),
)
async def lead_lifecycle(
    session: SessionDep, lead_key: Annotated[str, Path(max_length=64)]
) -> dict[str, Any]:
    """One person's lifecycle: what reports know about them, at any of their keys
    (`lead_key` in the answer is the one they are known by now)."""
    found = await repository.lifecycle(session, await service.person_key(session, lead_key))
    if found is None:
        raise Problem(404, "unknown_lead", f"No event of lead {lead_key} has been seen.")
    return {**asdict(found), "stage": domain.STAGES[domain.furthest_stage(found)]}


class CostIn(BaseModel):
    """What a lead of a segment or campaign actually costs."""

    model_config = ConfigDict(extra="forbid")

    cost_per_lead: float = Field(ge=0, allow_inf_nan=False)


@router.get("/costs", dependencies=[READ])
async def costs(session: SessionDep, reporting: ReportingDep) -> documents.CostList:
    """Cost per lead of every segment and campaign that has one, and where it comes from."""
    effective = await service.costs(session, reporting)
    return documents.CostList(
        currency=reporting.currency,
        costs=[
            documents.CostView(
                kind=kind, name=name, cost_per_lead=cost.cost_per_lead, origin=cost.origin
            )
            for (kind, name), cost in sorted(effective.items())
        ],
    )


def _known(reporting: Reporting, kind: CostKind, name: str) -> None:
    if kind == "segment" and name not in reporting.segment_names():
        raise Problem(
            404,
            "unknown_segment",
            f"No segment is named {name!r}; the configured ones are "
            f"{', '.join(reporting.segment_names())}.",
        )


@router.put("/costs/{kind}/{name}", dependencies=[AdminDep], responses=problem_responses(404))
async def set_cost(
    runtime: RuntimeDep,
    reporting: ReportingDep,
    kind: CostKind,
    name: Annotated[str, Path(min_length=1, max_length=200)],
    body: CostIn,
) -> documents.CostView:
    """Set what a lead of this segment or campaign costs (overrides the configuration)."""
    _known(reporting, kind, name)
    async with runtime.sessions() as session, session.begin():
        await repository.set_cost(session, kind, name, body.cost_per_lead, utcnow())
    COSTS_CHANGED.labels(kind).inc()
    return documents.CostView(kind=kind, name=name, cost_per_lead=body.cost_per_lead, origin="api")


@router.delete(
    "/costs/{kind}/{name}",
    status_code=204,
    dependencies=[AdminDep],
    responses=problem_responses(404),
)
async def delete_cost(
    runtime: RuntimeDep,
    kind: CostKind,
    name: Annotated[str, Path(min_length=1, max_length=200)],
) -> Response:
    """Forget a cost set at run time (the configured one, if any, applies again)."""
    async with runtime.sessions() as session, session.begin():
        deleted = await repository.delete_cost(session, kind, name)
    if not deleted:
        raise Problem(
            404,
            "unknown_cost",
            f"No cost per lead was set at run time for {kind} {name!r}; nothing to remove.",
        )
    COSTS_CHANGED.labels(kind).inc()
    return Response(status_code=204)
