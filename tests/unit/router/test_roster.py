"""Run-time overrides over the configuration: merge, revert, absences."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from leadflow.config import Rep
from leadflow_router.availability import off_duty
from leadflow_router.roster import AbsenceIn, RepOverride, effective, merge

ANA = Rep.model_validate(
    {"id": "ana", "name": "Ana", "email": "ana@example.com", "max_per_day": 5, "weight": 2}
)


def test_merge_sets_fields_and_null_reverts_to_the_configuration() -> None:
    stored = merge({}, RepOverride(max_per_day=10, active=False))
    assert stored == {"max_per_day": 10, "active": False}

    stored = merge(stored, RepOverride.model_validate({"max_per_day": None, "weight": 0.5}))
    assert stored == {"active": False, "weight": 0.5}

    rep = effective(ANA, stored, [])
    assert (rep.active, rep.max_per_day, rep.weight) == (False, 5, 0.5)


def test_overridden_working_hours_and_skills_are_typed() -> None:
    stored = merge(
        {},
        RepOverride.model_validate(
            {
                "working_hours": [{"days": ["sat-sun"], "start": "10:00", "end": "14:00"}],
                "languages": ["PT"],
            }
        ),
    )

    rep = effective(ANA, stored, [])

    assert rep.languages == ["pt"]
    assert off_duty(rep, datetime(2026, 11, 28, 11, 0, tzinfo=UTC)) is None
    assert off_duty(rep, datetime(2026, 11, 26, 11, 0, tzinfo=UTC)) is not None


def test_absences_are_added_to_configured_ones() -> None:
    start = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    end = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    rep = effective(ANA, {}, [(start, end, "dentist")])

    assert off_duty(rep, datetime(2026, 11, 26, 11, 0, tzinfo=UTC)) == (
        "out of office until 2026-11-26 12:00 UTC (dentist)"
    )
    assert effective(ANA, {}, []) is ANA


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"max_per_day": -1},
        {"weight": 0},
        {"nickname": "x"},
        {"working_hours": [{"days": ["funday"], "start": "09:00", "end": "10:00"}]},
    ],
)
def test_invalid_overrides_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RepOverride.model_validate(body)


@pytest.mark.parametrize(
    "body",
    [
        {"start": "2026-11-26T10:00:00", "end": "2026-11-26T12:00:00"},
        {"start": "2026-11-26T12:00:00Z", "end": "2026-11-26T10:00:00Z"},
        {"start": "2026-11-26T12:00:00Z"},
    ],
)
def test_invalid_absences_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AbsenceIn.model_validate(body)
