"""Report arithmetic over lifecycles: funnel, conversion, speed to lead, rejection reasons.

Pure functions of the lifecycles they are given (no IO, no clock). The funnel is
cumulative: a lead counts at every stage up to the furthest one it reached, so that a CRM
that skips recording a step (won without "accepted") does not break the stage ratios.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from leadflow_sla.reporting.lifecycle import Lifecycle
from leadflow_sla.reporting.query import Dimension, Touchpoint

STAGES = ("received", "mql", "assigned", "contacted", "accepted", "sql", "won")
NONE_LABEL = "(none)"
BUCKETS = (("lt_5m", 300.0), ("lt_1h", 3600.0), ("lt_24h", 86400.0), ("gte_24h", math.inf))


def dimension(lc: Lifecycle, by: Dimension, touch: Touchpoint) -> str:
    """The lead's value of a dimension (source, campaign and segment by first or last touch)."""
    value: str | None
    if by == "team":
        value = lc.team
    elif by == "rep":
        value = lc.rep_id
    else:
        value = getattr(lc, f"{touch}_{by}")
    return value or NONE_LABEL


def stage_times(lc: Lifecycle) -> tuple[datetime | None, ...]:
    """When the lead reached each stage of `STAGES` (None where it did not)."""
    return (
        lc.first_touch_at,
        lc.mql_at,
        lc.assigned_at,
        lc.contacted_at,
        lc.accepted_at,
        lc.converted_at,
        lc.won_at,
    )


def furthest_stage(lc: Lifecycle) -> int:
    """The index in `STAGES` of the furthest stage reached (0 when only received)."""
    return max((i for i, at in enumerate(stage_times(lc)) if at is not None), default=0)


def rate(numerator: int | float, denominator: int | float) -> float | None:
    """A ratio rounded to 4 places, or None when there is nothing to divide by."""
    return round(numerator / denominator, 4) if denominator else None


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile of `values` by linear interpolation (the median for q=0.5)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- funnel -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStage:
    """How many leads reached a stage, the conversion into it, and who stopped just before."""

    stage: str
    leads: int
    from_previous: float | None
    from_start: float | None
    leaked: int
    leaked_rejected: int
    leaked_lost: int
    leaked_open: int


@dataclass(frozen=True)
class ConversionRow:
    """Conversion and revenue of one group of leads (a source, campaign, segment, rep...)."""

    key: str
    leads: int
    mqls: int
    sqls: int
    won: int
    lead_to_sale: float | None
    mql_to_sql: float | None
    revenue: float
    average_deal: float | None


@dataclass(frozen=True)
class FunnelReport:
    """Stage counts with conversion and leakage, the MQL→SQL ratio, and a breakdown."""

    leads: int
    stages: list[FunnelStage]
    mql_to_sql: float | None
    breakdown_by: str
    breakdown: list[ConversionRow]


def funnel(lifecycles: Sequence[Lifecycle], by: Dimension, touch: Touchpoint) -> FunnelReport:
    """The funnel of these leads, and conversion and revenue per value of `by`."""
    furthest = [furthest_stage(lc) for lc in lifecycles]
    reached = [sum(1 for f in furthest if f >= i) for i in range(len(STAGES))]
    stages = []
    for i, stage in enumerate(STAGES):
        stopped = [lc for lc, f in zip(lifecycles, furthest, strict=True) if i and f == i - 1]
        rejected = sum(1 for lc in stopped if lc.rejected_at is not None)
        lost = sum(1 for lc in stopped if lc.rejected_at is None and lc.lost_at is not None)
        stages.append(
            FunnelStage(
                stage=stage,
                leads=reached[i],
                from_previous=rate(reached[i], reached[i - 1]) if i else None,
                from_start=rate(reached[i], reached[0]),
                leaked=len(stopped),
                leaked_rejected=rejected,
                leaked_lost=lost,
                leaked_open=len(stopped) - rejected - lost,
            )
        )
    groups: dict[str, list[Lifecycle]] = defaultdict(list)
    for lc in lifecycles:
        groups[dimension(lc, by, touch)].append(lc)
    breakdown = sorted(
        (conversion(key, group) for key, group in groups.items()),
        key=lambda row: (-row.revenue, -row.leads, row.key),
    )
    sql = STAGES.index("sql")
    mql = STAGES.index("mql")
    return FunnelReport(
        leads=reached[0],
        stages=stages,
        mql_to_sql=rate(reached[sql], reached[mql]),
        breakdown_by=by,
        breakdown=breakdown,
    )


def conversion(key: str, lifecycles: Iterable[Lifecycle]) -> ConversionRow:
    """Leads, MQLs, SQLs, sales, conversion and revenue of one group."""
    furthest = [(furthest_stage(lc), lc) for lc in lifecycles]
    mql, sql, won = STAGES.index("mql"), STAGES.index("sql"), STAGES.index("won")
    mqls = sum(1 for f, _ in furthest if f >= mql)
    sqls = sum(1 for f, _ in furthest if f >= sql)
    sales = sum(1 for f, _ in furthest if f >= won)
    revenue = round(sum(lc.revenue for _, lc in furthest), 2)
    return ConversionRow(
        key=key,
        leads=len(furthest),
        mqls=mqls,
        sqls=sqls,
        won=sales,
        lead_to_sale=rate(sales, len(furthest)),
        mql_to_sql=rate(sqls, mqls),
        revenue=revenue,
        average_deal=round(revenue / sales, 2) if sales else None,
    )


# --- speed to lead ------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedBucket:
    """Leads first contacted within a bucket's bound (or never)."""

    bucket: str
    leads: int
    share: float | None


@dataclass(frozen=True)
class RepSpeed:
    """One rep's speed to lead."""

    rep: str
    leads: int
    contacted: int
    median_s: float | None
    p90_s: float | None
    within_5m: float | None
    never: int


@dataclass(frozen=True)
class SpeedReport:
    """Speed to lead of sales-ready leads, and days from hand-off to first contact."""

    leads: int
    contacted: int
    median_s: float | None
    p90_s: float | None
    buckets: list[SpeedBucket]
    handed_off: int
    handoff_contacted: int
    handoff_median_days: float | None
    handoff_p90_days: float | None
    handoff_mean_days: float | None
    by_rep: list[RepSpeed]


def response_seconds(lc: Lifecycle) -> float | None:
    """Seconds from the moment the lead became sales-ready to its first contact."""
    start = lc.ready_at or lc.first_touch_at
    if lc.contacted_at is None or start is None:
        return None
    return max(0.0, (lc.contacted_at - start).total_seconds())


def speed(lifecycles: Sequence[Lifecycle]) -> SpeedReport:
    """Median, p90 and HBR's buckets over sales-ready leads; hand-off to first contact.

    Sales-ready: the lead qualified (MQL) or was handed to a rep. Leads sales called on
    its own while they were still nurture are not part of speed to lead.
    """
    ready = [lc for lc in lifecycles if lc.mql_at is not None or lc.assigned_at is not None]
    seconds = [s for s in (response_seconds(lc) for lc in ready) if s is not None]
    counts: Counter[str] = Counter()
    for s in seconds:
        counts[next(name for name, bound in BUCKETS if s < bound)] += 1
    counts["never"] = len(ready) - len(seconds)
    buckets = [
        SpeedBucket(name, counts[name], rate(counts[name], len(ready)))
        for name in [*(name for name, _ in BUCKETS), "never"]
    ]
    handed = [lc for lc in lifecycles if lc.assigned_at is not None]
    days = [
        max(0.0, (lc.contacted_at - lc.assigned_at).total_seconds()) / 86400
        for lc in handed
        if lc.contacted_at is not None and lc.assigned_at is not None
    ]
    by_rep: dict[str, list[Lifecycle]] = defaultdict(list)
    for lc in ready:
        if lc.rep_id is not None:
            by_rep[lc.rep_id].append(lc)
    return SpeedReport(
        leads=len(ready),
        contacted=len(seconds),
        median_s=_round(quantile(seconds, 0.5), 1),
        p90_s=_round(quantile(seconds, 0.9), 1),
        buckets=buckets,
        handed_off=len(handed),
        handoff_contacted=len(days),
        handoff_median_days=_round(quantile(days, 0.5), 4),
        handoff_p90_days=_round(quantile(days, 0.9), 4),
        handoff_mean_days=_round(sum(days) / len(days), 4) if days else None,
        by_rep=[_rep_speed(rep, leads) for rep, leads in sorted(by_rep.items())],
    )


def _rep_speed(rep: str, lifecycles: list[Lifecycle]) -> RepSpeed:
    seconds = [s for s in (response_seconds(lc) for lc in lifecycles) if s is not None]
    return RepSpeed(
        rep=rep,
        leads=len(lifecycles),
        contacted=len(seconds),
        median_s=_round(quantile(seconds, 0.5), 1),
        p90_s=_round(quantile(seconds, 0.9), 1),
        within_5m=rate(sum(1 for s in seconds if s < 300), len(lifecycles)),
        never=len(lifecycles) - len(seconds),
    )


def _round(value: float | None, places: int) -> float | None:
    return None if value is None else round(value, places)


# --- rejection reasons --------------------------------------------------------------------


@dataclass(frozen=True)
class ReasonRow:
    """How many leads stopped for one reason, and their share of all such leads."""

    reason: str
    leads: int
    share: float | None


@dataclass(frozen=True)
class ReasonsReport:
    """Why sales rejected leads at screening (ranked), and why deals were lost."""

    screened: int
    rejected: int
    rejection_rate: float | None
    reasons: list[ReasonRow]
    lost: int
    lost_reasons: list[ReasonRow]


def reasons(lifecycles: Sequence[Lifecycle]) -> ReasonsReport:
    """Rejection reasons ranked by count (then name); lost-deal reasons likewise."""
    rejected = [lc for lc in lifecycles if lc.rejected_at is not None]
    screened = sum(1 for lc in lifecycles if lc.accepted_at is not None or lc.rejected_at)
    lost = [lc for lc in lifecycles if lc.lost_at is not None and lc.won_at is None]
    return ReasonsReport(
        screened=screened,
        rejected=len(rejected),
        rejection_rate=rate(len(rejected), screened),
        reasons=ranked(lc.rejection_reason for lc in rejected),
        lost=len(lost),
        lost_reasons=ranked(lc.lost_reason for lc in lost),
    )


def ranked(values: Iterable[str | None]) -> list[ReasonRow]:
    """Reasons (case and spacing ignored) by how often they occur, most frequent first."""
    counts = Counter(" ".join((v or "").split()).lower() or "(no reason given)" for v in values)
    total = sum(counts.values())
    return [
        ReasonRow(reason, count, rate(count, total))
        for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
