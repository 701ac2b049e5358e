"""Which leads a report covers: the period and filters, checked into a `ReportQuery` (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from leadflow.config import Reporting

Touchpoint = Literal["first", "last"]
Dimension = Literal["source", "campaign", "segment", "team", "rep"]


@dataclass(frozen=True)
class ReportQuery:
    """Leads whose first touch falls in [start, end), narrowed by the filters.

    Source, campaign and segment are matched on the lead's first or last touch (`touch`).
    """

    start: datetime | None = None
    end: datetime | None = None
    source: str | None = None
    campaign: str | None = None
    segment: str | None = None
    team: str | None = None
    rep: str | None = None
    touch: Touchpoint = "first"

    def describe(self) -> dict[str, Any]:
        """The query as JSON-ready values (what a report says it covers)."""
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "source": self.source,
            "campaign": self.campaign,
            "segment": self.segment,
            "team": self.team,
            "rep": self.rep,
            "touch": self.touch,
        }


class QueryError(ValueError):
    """A report parameter that cannot be used; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_bound(field: str, value: str | None, *, end: bool) -> datetime | None:
    """`2026-11-01` or an ISO 8601 time (UTC unless it says otherwise) as a bound.

    A bare date as the end bound includes that whole day.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        midnight = datetime.combine(day, time(), tzinfo=UTC)
        return midnight + timedelta(days=1) if end else midnight
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise QueryError(
            field, f"{field} {value!r} is not a date; write 2026-11-01 or 2026-11-01T09:30:00Z."
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def make_query(
    reporting: Reporting,
    *,
    start: str | None = None,
    end: str | None = None,
    source: str | None = None,
    campaign: str | None = None,
    segment: str | None = None,
    team: str | None = None,
    rep: str | None = None,
    touch: Touchpoint = "first",
) -> ReportQuery:
    """A checked query; raises QueryError with a sentence naming the bad parameter."""
    lower = parse_bound("from", start, end=False)
    upper = parse_bound("to", end, end=True)
    if lower is not None and upper is not None and lower >= upper:
        raise QueryError("to", "to must be after from; the period is empty.")
    if segment is not None and segment not in reporting.segment_names():
        raise QueryError(
            "segment",
            f"no segment is named {segment!r}; "
            f"the configured ones are {', '.join(reporting.segment_names())}.",
        )
    return ReportQuery(lower, upper, source, campaign, segment, team, rep, touch)
