"""The ladder: warning at a share of the window, breach, escalation after a delay, repeat limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow.config import Rep, SlaPolicy
from leadflow_sla.business_time import calendar_for
from leadflow_sla.ladder import StagePlan, plan

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
UTC_CAL = calendar_for(
    Rep.model_validate(
        {
            "id": "ana",
            "name": "Ana",
            "email": "a@x.example",
            "working_hours": [{"days": ["mon-fri"], "start": "09:00", "end": "17:00"}],
        }
    )
)


def policy(**fields: Any) -> SlaPolicy:
    return SlaPolicy.model_validate({"name": "hot", "window": "10m", **fields})


def test_a_plain_policy_only_breaches() -> None:
    assert plan(policy(), T0, UTC_CAL, 0) == [StagePlan("breached", T0 + timedelta(minutes=10))]


def test_the_full_ladder_in_wall_time() -> None:
    stages = plan(policy(warn_at_percent=80, escalate_after="15m"), T0, UTC_CAL, 0)

    assert stages == [
        StagePlan("warning", T0 + timedelta(minutes=8)),
        StagePlan("breached", T0 + timedelta(minutes=10)),
        StagePlan("escalated", T0 + timedelta(minutes=25)),
    ]


def test_no_escalation_once_the_lead_was_escalated_max_times() -> None:
    p = policy(escalate_after="15m", max_escalations=2)

    assert [s.stage for s in plan(p, T0, UTC_CAL, 1)] == ["breached", "escalated"]
    assert [s.stage for s in plan(p, T0, UTC_CAL, 2)] == ["breached"]
    assert [
        s.stage for s in plan(policy(escalate_after="1m", max_escalations=0), T0, UTC_CAL, 0)
    ] == ["breached"]


def test_business_time_moves_every_rung_into_working_hours() -> None:
    # Thursday 16:56 UTC, working 09-17 UTC: 4 min today, the rest on Friday morning.
    start = datetime(2026, 11, 26, 16, 56, tzinfo=UTC)
    p = policy(clock="business", warn_at_percent=50, escalate_after="30m")

    stages = plan(p, start, UTC_CAL, 0)

    assert stages == [
        StagePlan("warning", datetime(2026, 11, 27, 9, 1, tzinfo=UTC)),
        StagePlan("breached", datetime(2026, 11, 27, 9, 6, tzinfo=UTC)),
        StagePlan("escalated", datetime(2026, 11, 27, 9, 36, tzinfo=UTC)),
    ]


def test_wall_time_ignores_the_calendar() -> None:
    start = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)  # a Saturday night

    assert plan(policy(), start, UTC_CAL, 0)[0].due_at == start + timedelta(minutes=10)
