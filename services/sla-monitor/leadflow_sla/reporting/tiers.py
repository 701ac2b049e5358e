"""Tier shares: how many of the leads that arrived took each tier, against the targets (pure).

A lead counts in the period of its first touch (UTC day, ISO week or month), under its
source or campaign (first or last touch), in one tier: `mql` if it ever qualified, else
the tier it was scored into last, else `unscored`. Shares of a group add up to 1. A tier
with a target (`reporting.tier_targets`) is shown in every group, with none of its leads
if need be; its share is flagged `above` or `below` when it is further than
`reporting.tier_tolerance` from the target, once the group has `tier_min_leads` leads
(fewer: `too few leads`, not flagged).

The arithmetic reads only a lead's first touch, tier, qualification and touch groups
(`TierLead`): a whole `Lifecycle` does, and so does the narrow row the report is served
from (`repository.tier_leads`), so that the report never builds every lead's lifecycle.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from leadflow.config import TIERS, Reporting
from leadflow_sla.reporting.domain import NONE_LABEL, rate
from leadflow_sla.reporting.query import Touchpoint

Period = Literal["day", "week", "month"]
TierDimension = Literal["all", "source", "campaign"]
Status = Literal["on target", "above", "below", "too few leads", "no target"]
UNSCORED = "unscored"
ALL = "(all)"


class TierLead(Protocol):
    """What tier shares read of a lead: when it arrived, its tier, whether it qualified,
    and the source and campaign of its first and last touches."""

    @property
    def first_touch_at(self) -> datetime | None: ...
    @property
    def mql_at(self) -> datetime | None: ...
    @property
    def tier(self) -> str | None: ...
    @property
    def first_source(self) -> str | None: ...
    @property
    def first_campaign(self) -> str | None: ...
    @property
    def last_source(self) -> str | None: ...
    @property
    def last_campaign(self) -> str | None: ...


def tier_of(lc: TierLead) -> str:
    """The tier a lead counts in: mql if it ever qualified, else its latest tier."""
    if lc.mql_at is not None:
        return "mql"
    return lc.tier or UNSCORED


def period_of(at: datetime, period: Period) -> str:
    """The period `at` falls in, in UTC: `2026-11-26`, `2026-W48` or `2026-11`."""
    day = at.astimezone(UTC).date()
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


@dataclass(frozen=True)
class TierShare:
    """One tier's part of one group's leads, against its target."""

    period: str
    key: str
    tier: str
    leads: int
    total: int
    share: float | None
    target: float | None
    drift: float | None
    status: Status


@dataclass(frozen=True)
class TiersReport:
    """Tier shares of the whole range, and per period and group, with drift flagged."""

    leads: int
    period: Period
    by: TierDimension
    tolerance: float
    min_leads: int
    flagged: int
    overall: list[TierShare]
    rows: list[TierShare]


def tiers(
    leads: Iterable[TierLead],
    reporting: Reporting,
    period: Period = "week",
    by: TierDimension = "all",
    touch: Touchpoint = "first",
) -> TiersReport:
    """Each tier's share of the leads per period and `by` group, against the targets."""
    groups: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    overall: Counter[str] = Counter()
    for lead in leads:
        if lead.first_touch_at is None:
            continue
        tier = tier_of(lead)
        key = ALL if by == "all" else (getattr(lead, f"{touch}_{by}") or NONE_LABEL)
        groups[(period_of(lead.first_touch_at, period), key)][tier] += 1
        overall[tier] += 1
    rows = [
        share
        for (when, key), counts in sorted(groups.items())
        for share in _shares(when, key, counts, reporting)
    ]
    whole = _shares("all", ALL, overall, reporting)
    flagged = sum(1 for row in rows if row.status in ("above", "below"))
    return TiersReport(
        leads=sum(overall.values()),
        period=period,
        by=by,
        tolerance=reporting.tier_tolerance,
        min_leads=reporting.tier_min_leads,
        flagged=flagged,
        overall=whole,
        rows=rows,
    )


def _shares(when: str, key: str, counts: Counter[str], reporting: Reporting) -> list[TierShare]:
    total = sum(counts.values())
    if not total:
        return []
    targets = reporting.tier_targets
    order = [*TIERS, UNSCORED]
    shown = sorted(set(counts) | set(targets), key=order.index)
    return [_share(when, key, tier, counts[tier], total, reporting) for tier in shown]


def _share(
    when: str, key: str, tier: str, leads: int, total: int, reporting: Reporting
) -> TierShare:
    share = rate(leads, total)
    target = reporting.tier_targets.get(tier)
    drift = None if target is None or share is None else round(share - target, 4)
    status: Status
    if target is None or drift is None:
        status = "no target"
    elif total < reporting.tier_min_leads:
        status = "too few leads"
    elif drift > reporting.tier_tolerance:
        status = "above"
    elif drift < -reporting.tier_tolerance:
        status = "below"
    else:
        status = "on target"
    return TierShare(when, key, tier, leads, total, share, target, drift, status)
