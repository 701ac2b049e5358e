"""The JSON answers of `/v1/reports/...` as pydantic models, for the OpenAPI document.

A report's document is `render.document`: a header (which report, when, for which query)
and the report dataclass's fields. Each model here is made from the dataclass itself, so
the schema cannot drift from what the report computes.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from leadflow_sla.reporting import domain, roi, tiers
from leadflow_sla.reporting.lifecycle import Lifecycle
from leadflow_sla.reporting.query import Touchpoint


class ReportScope(BaseModel):
    """The period and filters a report covers (`from` and `to` as ISO times, UTC)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    start: str | None = Field(alias="from")
    end: str | None = Field(alias="to")
    source: str | None
    campaign: str | None
    segment: str | None
    team: str | None
    rep: str | None
    touch: Touchpoint


class ReportHeader(BaseModel):
    """What every report document starts with."""

    report: str
    generated_at: datetime
    query: ReportScope


def _document(report: type[Any], description: str) -> type[BaseModel]:
    """The document of a report dataclass: the header, then the report's fields."""
    hints = get_type_hints(report)
    fields: dict[str, Any] = {f.name: (hints[f.name], ...) for f in dataclasses.fields(report)}
    name = report.__name__.removesuffix("Report") + "Document"
    return create_model(name, __base__=ReportHeader, __doc__=description, **fields)


FunnelDocument = _document(domain.FunnelReport, "Stage counts, conversion and leakage.")
SpeedDocument = _document(domain.SpeedReport, "Speed to lead and hand-off, per rep.")
ReasonsDocument = _document(domain.ReasonsReport, "Rejection and lost-deal reasons, ranked.")
RoiDocument = _document(roi.RoiReport, "Maximum cost per lead against what leads cost.")
TiersDocument = _document(tiers.TiersReport, "Each tier's share of the leads per period.")


def _lifecycle() -> type[BaseModel]:
    hints = get_type_hints(Lifecycle)
    fields: dict[str, Any] = {f.name: (hints[f.name], ...) for f in dataclasses.fields(Lifecycle)}
    stage = (str, Field(description="The furthest stage the lead reached."))
    return create_model(
        "LeadLifecycle",
        __doc__="What reports know about one person.",
        **fields,
        stage=stage,
    )


LeadLifecycle = _lifecycle()


class CostView(BaseModel):
    """What a lead of a segment or campaign costs, and who said so."""

    kind: roi.CostKind
    name: str
    cost_per_lead: float
    origin: Literal["config", "api"] = Field(description="`api`: set at run time.")


class CostList(BaseModel):
    """Cost per lead of every segment and campaign that has one."""

    currency: str
    costs: list[CostView]
