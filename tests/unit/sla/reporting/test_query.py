"""Report periods and filters: what is accepted, and the sentence when it is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from leadflow.config import Reporting
from leadflow_sla.reporting.query import QueryError, make_query, parse_bound

REPORTING = Reporting.model_validate({"segments": [{"name": "enterprise"}]})


def test_a_bare_end_date_includes_that_whole_day() -> None:
    assert parse_bound("from", "2026-11-01", end=False) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_bound("to", "2026-11-30", end=True) == datetime(2026, 12, 1, tzinfo=UTC)


def test_times_are_utc_unless_they_say_otherwise() -> None:
    assert parse_bound("from", "2026-11-01T09:30:00", end=False) == datetime(
        2026, 11, 1, 9, 30, tzinfo=UTC
    )
    assert parse_bound("from", "2026-11-01T09:30:00Z", end=False) == datetime(
        2026, 11, 1, 9, 30, tzinfo=UTC
    )
    plus_one = parse_bound("to", "2026-11-01T10:30:00+01:00", end=True)
    assert plus_one == datetime(2026, 11, 1, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    assert parse_bound("to", "  ", end=True) is None


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"start": "yesterday"}, "from", "'yesterday' is not a date"),
        ({"end": "2026-13-01"}, "to", "is not a date"),
        ({"start": "2026-11-02", "end": "2026-11-01"}, "to", "to must be after from"),
        ({"segment": "nope"}, "segment", "the configured ones are enterprise, other"),
    ],
)
def test_bad_parameters_name_the_field(options: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(QueryError, match=message) as caught:
        make_query(REPORTING, **options)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_query_describes_itself() -> None:
    query = make_query(REPORTING, start="2026-11-01", end="2026-11-01", segment="other", rep="ana")
    assert query.describe() == {
        "from": "2026-11-01T00:00:00+00:00",
        "to": "2026-11-02T00:00:00+00:00",
        "source": None,
        "campaign": None,
        "segment": "other",
        "team": None,
        "rep": "ana",
        "touch": "first",
    }
