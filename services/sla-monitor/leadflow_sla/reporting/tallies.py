"""Reports counted by the database: the tallies funnel, speed to lead, reasons and ROI are
built from (`domain`, `roi`), one statement each, grouped in SQL, so that a report never
loads the lifecycles it covers.

The statements group by the values as stored and leave the labelling (`(none)`, reasons
merged whatever their case and spacing) to the report arithmetic, so the numbers are the
ones the same arithmetic gives over the lifecycles themselves (`domain.stage_tallies` and
its siblings). Times are compared in whole microseconds (`WaitMicros`), and quantiles
read only the ranks they need, picked by a window function.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from leadflow_sla.reporting.domain import (
    BUCKETS,
    ReasonTally,
    ResponseTally,
    Sample,
    SpeedTally,
    StageTally,
    days,
    seconds,
)
from leadflow_sla.reporting.query import Dimension, ReportQuery
from leadflow_sla.reporting.repository import covered
from leadflow_sla.reporting.roi import CostKind, SegmentTally
from leadflow_sla.reporting.tables import lead_lifecycles

# The quantiles reports show, as fractions: the ranks around them are picked in integer
# arithmetic, floor((n - 1) * 9 / 10) being floor((n - 1) * 0.9) for every n (0.9 as a
# float is a hair above 9/10, so the product never falls below the integer).
QUANTILES = ((1, 2), (9, 10))


class WaitMicros(FunctionElement[int]):
    """Whole microseconds from `start` to `end` (two `UtcDateTime` values, both known), 0
    when `end` came first: how long something waited."""

    type = BigInteger()
    inherit_cache = True
    name = "wait_micros"


@compiles(WaitMicros, "postgresql")
def _wait_postgresql(element: WaitMicros, compiler: SQLCompiler, **kw: Any) -> str:
    end, start = (compiler.process(arg, **kw) for arg in element.clauses)
    # EXTRACT from an interval is an exact numeric since PostgreSQL 14.
    return f"GREATEST(CAST(EXTRACT(EPOCH FROM ({end} - {start})) * 1000000 AS BIGINT), 0)"


@compiles(WaitMicros, "sqlite")
def _wait_sqlite(element: WaitMicros, compiler: SQLCompiler, **kw: Any) -> str:
    end, start = (compiler.process(arg, **kw) for arg in element.clauses)
    # SQLite holds `YYYY-MM-DD HH:MM:SS.ffffff`: whole seconds from the first 19 characters
    # (strftime would round the fraction into them), microseconds from the last six.
    return (
        f"MAX((CAST(strftime('%s', substr({end}, 1, 19)) AS INTEGER)"
        f" - CAST(strftime('%s', substr({start}, 1, 19)) AS INTEGER)) * 1000000"
        f" + CAST(substr({end}, 21, 6) AS INTEGER) - CAST(substr({start}, 21, 6) AS INTEGER), 0)"
    )


def _furthest_stage() -> ColumnElement[int]:
    """`domain.furthest_stage` in SQL: the index of the furthest stage with a time."""
    c = lead_lifecycles.c
    reached = (c.won_at, c.converted_at, c.accepted_at, c.contacted_at, c.assigned_at, c.mql_at)
    return case(*((at.is_not(None), len(reached) - i) for i, at in enumerate(reached)), else_=0)


def _dimension(by: Dimension, query: ReportQuery) -> ColumnElement[Any]:
    c = lead_lifecycles.c
    if by == "team":
        return c.team
    if by == "rep":
        return c.rep_id
    return c[f"{query.touch}_{by}"]


async def stage_tallies(
    session: AsyncSession, query: ReportQuery, by: Dimension, teams: Collection[str] | None
) -> list[StageTally]:
    """The leads a report covers, counted per value of `by` and furthest stage."""
    c = lead_lifecycles.c
    key, furthest = _dimension(by, query), _furthest_stage()
    lost = case((and_(c.rejected_at.is_(None), c.lost_at.is_not(None)), 1))
    rows = await session.execute(
        select(
            key,
            furthest,
            func.count(),
            func.count(c.rejected_at),
            func.count(lost),
            func.coalesce(func.sum(c.revenue), 0.0),
        )
        .where(*covered(query, teams))
        .group_by(key, furthest)
        .order_by(key, furthest)
    )
    return [
        StageTally(key, int(stage), leads, rejected, lost, float(revenue))
        for key, stage, leads, rejected, lost, revenue in rows
    ]


async def segment_tallies(
    session: AsyncSession, query: ReportQuery, by: CostKind, teams: Collection[str] | None
) -> list[SegmentTally]:
    """The leads a report covers, counted per segment or campaign and segment."""
    c = lead_lifecycles.c
    segment = c[f"{query.touch}_segment"]
    keys = [segment] if by == "segment" else [c[f"{query.touch}_{by}"], segment]
    rows = await session.execute(
        select(
            *keys,
            func.count(),
            func.count(c.won_at),
            func.sum(c.revenue),
            func.sum(c.reported_profit),
            func.sum(c.revenue_without_profit),
        )
        .where(*covered(query, teams))
        .group_by(*keys)
        .order_by(*keys)
    )
    found = []
    for row in rows:
        key, group = (row[0], row[0]) if by == "segment" else (row[0], row[1])
        leads, sales, revenue, profit, without = row[len(keys) :]
        found.append(
            SegmentTally(key, group, leads, sales, float(revenue), float(profit), float(without))
        )
    return found


async def reason_tally(
    session: AsyncSession, query: ReportQuery, teams: Collection[str] | None
) -> ReasonTally:
    """Leads screened, and rejections and lost deals per reason as recorded."""
    c = lead_lifecycles.c
    where = covered(query, teams)
    screened = or_(c.accepted_at.is_not(None), c.rejected_at.is_not(None))
    kind = "kind"
    statement = union_all(
        select(literal("screened").label(kind), null().label("reason"), func.count()).where(
            *where, screened
        ),
        select(literal("rejected"), c.rejection_reason, func.count())
        .where(*where, c.rejected_at.is_not(None))
        .group_by(c.rejection_reason),
        select(literal("lost"), c.lost_reason, func.count())
        .where(*where, c.lost_at.is_not(None), c.won_at.is_(None))
        .group_by(c.lost_reason),
    )
    counted: dict[str, Counter[str | None]] = defaultdict(Counter)
    for found, reason, count in await session.execute(statement):
        counted[found][reason] += count
    return ReasonTally(
        screened=counted["screened"][None], rejected=counted["rejected"], lost=counted["lost"]
    )


async def speed_tally(
    session: AsyncSession, query: ReportQuery, teams: Collection[str] | None
) -> SpeedTally:
    """Speed to lead's counts per owner and the response and hand-off times at the ranks the
    quantiles need, in one statement over the sales-ready leads' waits, computed once."""
    c = lead_lifecycles.c
    start = func.coalesce(c.ready_at, c.first_touch_at)
    contacted = c.contacted_at.is_not(None)
    ready = (
        select(
            c.rep_id,
            c.assigned_at,
            case((contacted, WaitMicros(c.contacted_at, start))).label("response"),
            case(
                (
                    and_(contacted, c.assigned_at.is_not(None)),
                    WaitMicros(c.contacted_at, c.assigned_at),
                )
            ).label("handoff"),
        )
        .where(*covered(query, teams), or_(c.mql_at.is_not(None), c.assigned_at.is_not(None)))
        # Computed once, though the statement reads it four times.
        .cte("ready")
        .prefix_with("MATERIALIZED")
    )
    r = ready.c
    statement = union_all(
        _owners(ready),
        _ranks("responses", None, r.response),
        _ranks("handoffs", None, r.handoff),
        _ranks("rep", r.rep_id, r.response),
    )
    owners: list[ResponseTally] = []
    sizes: dict[tuple[str, str], int] = {}
    values: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for part, group, *numbers in await session.execute(statement):
        if part == OWNERS:
            owners.append(_owner(group, numbers))
        elif group is not None:
            size, rank, micros = numbers[:3]
            sizes[part, group] = size
            values[part, group][rank] = days(micros) if part == "handoffs" else seconds(micros)
    samples = {key: Sample(size, values[key]) for key, size in sizes.items()}
    return SpeedTally(
        owners=owners,
        responses=samples.get(("responses", ""), Sample(0, {})),
        handoffs=samples.get(("handoffs", ""), Sample(0, {})),
        rep_responses={rep: found for (part, rep), found in samples.items() if part == "rep"},
    )


# The parts of speed to lead's statement: one row per owner (part, rep, 2 counts, the
# buckets, 3 hand-off figures), then samples' ranks, padded to the same width.
OWNERS = "owners"
_WIDTH = 4 + len(BUCKETS) + 3


def _bucket(response: ColumnElement[int]) -> ColumnElement[str]:
    """`domain.bucket_of` in SQL, over a response time in microseconds."""
    bounded = [(name, bound) for name, bound in BUCKETS if bound != math.inf]
    last = BUCKETS[-1][0]
    return case(*((response < int(bound * 10**6), name) for name, bound in bounded), else_=last)


def _owners(ready: Any) -> Select[Any]:
    """Per owner: ready leads, contacted, per bucket, handed off, contacted after, the sum of
    those waits."""
    r = ready.c
    bucket = _bucket(r.response)
    in_bucket = [
        func.count(case((and_(r.response.is_not(None), bucket == name), 1))) for name, _ in BUCKETS
    ]
    return select(
        literal(OWNERS).label("part"),
        r.rep_id.label("grp"),
        func.count(),
        func.count(r.response),
        *in_bucket,
        func.count(r.assigned_at),
        func.count(r.handoff),
        cast(func.coalesce(func.sum(r.handoff), 0), BigInteger),
    ).group_by(r.rep_id)


def _owner(rep: str | None, numbers: list[Any]) -> ResponseTally:
    leads, contacted, *counts, handed, handoff_contacted, handoff = numbers
    return ResponseTally(
        rep=rep,
        leads=leads,
        contacted=contacted,
        buckets={name: n for (name, _), n in zip(BUCKETS, counts, strict=True) if n},
        handed_off=handed,
        handoff_contacted=handoff_contacted,
        handoff_micros=int(handoff),
    )


def _ranks(name: str, group: ColumnElement[Any] | None, value: ColumnElement[int]) -> Select[Any]:
    """The values of one sample at the ranks its quantiles read, with the sample's size.

    The sample of all leads is the group `""`; leads of no owner are no rep's sample (the
    group None, skipped)."""
    ordered = (
        select(
            literal(name).label("part"),
            (literal("", String) if group is None else group).label("grp"),
            value.label("value"),
            (func.row_number().over(partition_by=group, order_by=value) - 1).label("rank"),
            func.count().over(partition_by=group).label("size"),
        )
        .where(value.is_not(None))
        .subquery()
    )
    o = ordered.c
    wanted = []
    for numerator, denominator in QUANTILES:
        low = (o.size - 1) * numerator // denominator
        wanted += [o.rank == low, o.rank == low + 1]
    padding = [null()] * (_WIDTH - 5)
    return select(o.part, o.grp, o.size, o.rank, o.value, *padding).where(or_(*wanted))
