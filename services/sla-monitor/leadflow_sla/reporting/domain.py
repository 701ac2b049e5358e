"""Report arithmetic: funnel, conversion, speed to lead, rejection reasons.

Pure (no IO, no clock). Each report is built from tallies (`StageTally`, `SpeedTally`,
`ReasonTally`): the database counts them for the API and the console (`tallies`), and
`stage_tallies`, `speed_tally` and `reason_tally` count them over lifecycles, so a report
folded over lifecycles and one counted in SQL go through the same arithmetic. The funnel is
cumulative: a lead counts at every stage up to the furthest one it reached, so that a CRM
that skips recording a step (won without "accepted") does not break the stage ratios.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

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
    return Sample.of(values).quantile(q)


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
    return funnel_of(stage_tallies(lifecycles, by, touch), by)


@dataclass(frozen=True)
class StageTally:
    """The leads of one group (a value of the breakdown's dimension, as stored) that got no
    further than one stage: how many, how many of those were rejected at screening or else
    lost, and their revenue. What the database counts in place of the lifecycles."""

    key: str | None
    furthest: int
    leads: int
    rejected: int
    lost: int
    revenue: float


def stage_tallies(
    lifecycles: Iterable[Lifecycle], by: Dimension, touch: Touchpoint
) -> list[StageTally]:
    """The leads counted per group and furthest stage (the funnel's input, from lifecycles)."""
    tallies: dict[tuple[str, int], list[int | float]] = {}
    for lc in lifecycles:
        furthest = furthest_stage(lc)
        tally = tallies.setdefault((dimension(lc, by, touch), furthest), [0, 0, 0, 0.0])
        tally[0] += 1
        tally[1] += lc.rejected_at is not None
        tally[2] += lc.rejected_at is None and lc.lost_at is not None
        tally[3] += lc.revenue
    return [
        StageTally(key, furthest, int(leads), int(rejected), int(lost), float(revenue))
        for (key, furthest), (leads, rejected, lost, revenue) in tallies.items()
    ]


def funnel_of(tallies: Sequence[StageTally], by: Dimension) -> FunnelReport:
    """The funnel and the breakdown per value of `by`, from the leads counted per group and
    furthest stage."""
    reached = [sum(t.leads for t in tallies if t.furthest >= i) for i in range(len(STAGES))]
    stages = []
    for i, stage in enumerate(STAGES):
        stopped = [t for t in tallies if i and t.furthest == i - 1]
        leaked = sum(t.leads for t in stopped)
        rejected = sum(t.rejected for t in stopped)
        lost = sum(t.lost for t in stopped)
        stages.append(
            FunnelStage(
                stage=stage,
                leads=reached[i],
                from_previous=rate(reached[i], reached[i - 1]) if i else None,
                from_start=rate(reached[i], reached[0]),
                leaked=leaked,
                leaked_rejected=rejected,
                leaked_lost=lost,
                leaked_open=leaked - rejected - lost,
            )
        )
    groups: dict[str, list[StageTally]] = defaultdict(list)
    for tally in tallies:
        groups[tally.key or NONE_LABEL].append(tally)
    breakdown = sorted(
        (conversion_of(key, group) for key, group in groups.items()),
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
    return conversion_of(key, stage_tallies(lifecycles, "source", "first"))


def conversion_of(key: str, tallies: Iterable[StageTally]) -> ConversionRow:
    """Conversion and revenue of one group, from its leads counted per furthest stage."""
    mql, sql, won = STAGES.index("mql"), STAGES.index("sql"), STAGES.index("won")
    leads = mqls = sqls = sales = 0
    revenue = 0.0
    for t in tallies:
        leads += t.leads
        mqls += t.leads if t.furthest >= mql else 0
        sqls += t.leads if t.furthest >= sql else 0
        sales += t.leads if t.furthest >= won else 0
        revenue += t.revenue
    revenue = round(revenue, 2)
    return ConversionRow(
        key=key,
        leads=leads,
        mqls=mqls,
        sqls=sqls,
        won=sales,
        lead_to_sale=rate(sales, leads),
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
    micros = response_micros(lc)
    return None if micros is None else seconds(micros)


def response_micros(lc: Lifecycle) -> int | None:
    """Microseconds from sales-ready to first contact, 0 when the contact came first."""
    start = lc.ready_at or lc.first_touch_at
    if lc.contacted_at is None or start is None:
        return None
    return max(0, _micros(lc.contacted_at - start))


def handoff_micros(lc: Lifecycle) -> int | None:
    """Microseconds from the first hand-off to first contact, 0 when the contact came first."""
    if lc.contacted_at is None or lc.assigned_at is None:
        return None
    return max(0, _micros(lc.contacted_at - lc.assigned_at))


def seconds(micros: int) -> float:
    """Microseconds as seconds, exactly as `timedelta.total_seconds` gives them."""
    return micros / 10**6


def days(micros: int) -> float:
    """Microseconds as days."""
    return seconds(micros) / 86400


def bucket_of(micros: int) -> str:
    """The HBR bucket of a response time."""
    return next(name for name, bound in BUCKETS if seconds(micros) < bound)


def _micros(delta: timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds


@dataclass(frozen=True)
class Sample:
    """Values sorted in ascending order, known at least at the ranks (from 0) that the
    quantiles read: the database sends those alone (`quantile_ranks`)."""

    size: int
    at: Mapping[int, float]

    @classmethod
    def of(cls, values: Iterable[float]) -> Sample:
        """A sample of every value."""
        ordered = sorted(values)
        return cls(len(ordered), dict(enumerate(ordered)))

    def quantile(self, q: float) -> float | None:
        """The q-quantile by linear interpolation between the two ranks around it."""
        if not self.size:
            return None
        low, high = quantile_ranks(self.size, q)
        position = (self.size - 1) * q
        return self.at[low] + (self.at[high] - self.at[low]) * (position - low)


def quantile_ranks(size: int, q: float) -> tuple[int, int]:
    """The ranks (from 0) of the two values a q-quantile of `size` values lies between."""
    low = math.floor((size - 1) * q)
    return low, min(low + 1, size - 1)


@dataclass(frozen=True)
class ResponseTally:
    """Sales-ready leads of one owner (None: no owner) counted for speed to lead: how many,
    how many were contacted, per HBR bucket, and hand-off to first contact."""

    rep: str | None
    leads: int
    contacted: int
    buckets: Mapping[str, int]
    handed_off: int
    handoff_contacted: int
    handoff_micros: int


@dataclass(frozen=True)
class SpeedTally:
    """What speed to lead is made of: the counts per owner, response and hand-off times of
    all leads, and response times per owner (seconds, days, seconds by rep)."""

    owners: Sequence[ResponseTally]
    responses: Sample
    handoffs: Sample
    rep_responses: Mapping[str, Sample]


def speed(lifecycles: Sequence[Lifecycle]) -> SpeedReport:
    """Median, p90 and HBR's buckets over sales-ready leads; hand-off to first contact.

    Sales-ready: the lead qualified (MQL) or was handed to a rep. Leads sales called on
    its own while they were still nurture are not part of speed to lead.
    """
    return speed_of(speed_tally(lifecycles))


def speed_tally(lifecycles: Iterable[Lifecycle]) -> SpeedTally:
    """Speed to lead's counts and times, from lifecycles."""
    ready = [lc for lc in lifecycles if lc.mql_at is not None or lc.assigned_at is not None]
    by_rep: dict[str | None, list[Lifecycle]] = defaultdict(list)
    for lc in ready:
        by_rep[lc.rep_id].append(lc)
    owners = []
    for rep, leads in by_rep.items():
        responses = [m for m in map(response_micros, leads) if m is not None]
        handoffs = [m for m in map(handoff_micros, leads) if m is not None]
        owners.append(
            ResponseTally(
                rep=rep,
                leads=len(leads),
                contacted=len(responses),
                buckets=Counter(map(bucket_of, responses)),
                handed_off=sum(1 for lc in leads if lc.assigned_at is not None),
                handoff_contacted=len(handoffs),
                handoff_micros=sum(handoffs),
            )
        )
    responses = [m for m in map(response_micros, ready) if m is not None]
    handoffs = [m for m in map(handoff_micros, ready) if m is not None]
    return SpeedTally(
        owners=owners,
        responses=Sample.of(map(seconds, responses)),
        handoffs=Sample.of(map(days, handoffs)),
        rep_responses={
            rep: Sample.of(seconds(m) for m in map(response_micros, leads) if m is not None)
            for rep, leads in by_rep.items()
            if rep is not None
        },
    )


def speed_of(tally: SpeedTally) -> SpeedReport:
    """Speed to lead from its counts and times."""
    leads = sum(o.leads for o in tally.owners)
    counts = Counter[str]()
    for owner in tally.owners:
        counts.update(owner.buckets)
        counts["never"] += owner.leads - owner.contacted
    buckets = [
        SpeedBucket(name, counts[name], rate(counts[name], leads))
        for name in [*(name for name, _ in BUCKETS), "never"]
    ]
    handoff_contacted = sum(o.handoff_contacted for o in tally.owners)
    handoff_micros = sum(o.handoff_micros for o in tally.owners)
    return SpeedReport(
        leads=leads,
        contacted=tally.responses.size,
        median_s=_round(tally.responses.quantile(0.5), 1),
        p90_s=_round(tally.responses.quantile(0.9), 1),
        buckets=buckets,
        handed_off=sum(o.handed_off for o in tally.owners),
        handoff_contacted=handoff_contacted,
        handoff_median_days=_round(tally.handoffs.quantile(0.5), 4),
        handoff_p90_days=_round(tally.handoffs.quantile(0.9), 4),
        handoff_mean_days=(
            _round(days(handoff_micros) / handoff_contacted, 4) if handoff_contacted else None
        ),
        by_rep=[
            _rep_speed(owner, tally.rep_responses.get(owner.rep, Sample(0, {})))
            for owner in sorted(tally.owners, key=lambda o: o.rep or "")
            if owner.rep is not None
        ],
    )


def _rep_speed(owner: ResponseTally, responses: Sample) -> RepSpeed:
    assert owner.rep is not None
    return RepSpeed(
        rep=owner.rep,
        leads=owner.leads,
        contacted=owner.contacted,
        median_s=_round(responses.quantile(0.5), 1),
        p90_s=_round(responses.quantile(0.9), 1),
        within_5m=rate(owner.buckets.get("lt_5m", 0), owner.leads),
        never=owner.leads - owner.contacted,
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
    return reasons_of(reason_tally(lifecycles))


@dataclass(frozen=True)
class ReasonTally:
    """Leads screened, and the leads per reason as recorded, of rejections and of lost deals
    (deals lost and never won)."""

    screened: int
    rejected: Mapping[str | None, int]
    lost: Mapping[str | None, int]


def reason_tally(lifecycles: Iterable[Lifecycle]) -> ReasonTally:
    """Screenings and reasons counted, from lifecycles."""
    screened = 0
    rejected: Counter[str | None] = Counter()
    lost: Counter[str | None] = Counter()
    for lc in lifecycles:
        screened += lc.accepted_at is not None or lc.rejected_at is not None
        if lc.rejected_at is not None:
            rejected[lc.rejection_reason] += 1
        if lc.lost_at is not None and lc.won_at is None:
            lost[lc.lost_reason] += 1
    return ReasonTally(screened, rejected, lost)


def reasons_of(tally: ReasonTally) -> ReasonsReport:
    """The reasons report from its counts."""
    rejected = sum(tally.rejected.values())
    return ReasonsReport(
        screened=tally.screened,
        rejected=rejected,
        rejection_rate=rate(rejected, tally.screened),
        reasons=ranked_counts(tally.rejected),
        lost=sum(tally.lost.values()),
        lost_reasons=ranked_counts(tally.lost),
    )


def ranked(values: Iterable[str | None]) -> list[ReasonRow]:
    """Reasons (case and spacing ignored) by how often they occur, most frequent first."""
    return ranked_counts(Counter(values))


def ranked_counts(counted: Mapping[str | None, int]) -> list[ReasonRow]:
    """Reasons counted as recorded, merged when they differ only in case and spacing, by
    how often they occur, most frequent first."""
    counts: Counter[str] = Counter()
    for value, count in counted.items():
        counts[" ".join((value or "").split()).lower() or "(no reason given)"] += count
    total = sum(counts.values())
    return [
        ReasonRow(reason, count, rate(count, total))
        for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
