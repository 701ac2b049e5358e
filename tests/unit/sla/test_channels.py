"""Who hears of an alert: the rep (warning), the manager (breach, escalation), webhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow.config import Sla
from leadflow.events import SlaAlert
from leadflow_sla.channels import dedupe_key, notifications_for, subject

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def alert(stage: str, team: str = "enterprise") -> SlaAlert:
    return SlaAlert(
        lead_key="lk_1",
        assignment_id="a1",
        stage=stage,
        policy="hot-mql",
        rep_id="ana",
        rep_name="Ana Silva",
        team=team,
        manager_email="grace@example.com",
        assigned_at=T0,
        due_at=T0 + timedelta(minutes=5),
        fired_at=T0 + timedelta(minutes=4),
        late_by_s=-60,
        message="the text",
    )


def sla(**fields: Any) -> Sla:
    return Sla.model_validate({"policies": [{"name": "p", "window": "5m"}], **fields})


@pytest.mark.parametrize(
    ("stage", "to"),
    [
        ("warning", "ana@example.com"),
        ("breached", "grace@example.com"),
        ("escalated", "grace@example.com"),
    ],
)
def test_the_rep_is_warned_and_the_manager_alerted_by_email(stage: str, to: str) -> None:
    [email] = notifications_for(alert(stage), sla(), "ana@example.com")

    assert email.channel == "email"
    assert email.target == to
    assert email.body == "the text"
    assert email.dedupe_key == f"sla:a1:{stage}:email:{to}"
    assert email.payload["type"] == f"sla.{stage}"
    assert email.payload["lead_key"] == "lk_1"


def test_email_can_be_turned_off_and_a_missing_address_sends_nothing() -> None:
    assert notifications_for(alert("breached"), sla(email=False), "ana@example.com") == []
    assert notifications_for(alert("warning"), sla(), None) == []


def test_webhooks_get_the_stages_and_teams_they_subscribe_to() -> None:
    config = sla(
        email=False,
        webhooks=[
            {"url": "https://hooks.example/all"},
            {"url": "https://hooks.slack.example/T1", "format": "slack", "teams": ["smb"]},
            {"url": "https://hooks.example/warn", "stages": ["warning"]},
        ],
    )

    breached = notifications_for(alert("breached", team="smb"), config, None)
    warning = notifications_for(alert("warning"), config, None)

    assert [(n.channel, n.target) for n in breached] == [
        ("webhook", "https://hooks.example/all"),
        ("slack", "https://hooks.slack.example/T1"),
    ]
    assert [(n.channel, n.target) for n in warning] == [("webhook", "https://hooks.example/warn")]
    assert notifications_for(alert("breached", team="enterprise"), config, None)[0].target == (
        "https://hooks.example/all"
    )


def test_long_targets_keep_the_dedupe_key_within_the_column() -> None:
    url = "https://hooks.example/" + "x" * 300

    key = dedupe_key(alert("breached"), "webhook", url)

    assert len(key) <= 200
    assert key.startswith("sla:a1:breached:webhook:")
    assert key != dedupe_key(alert("breached"), "webhook", url + "y")


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("warning", "Follow up lead lk_1: due in 1 min"),
        ("breached", "Overdue lead lk_1: Ana Silva missed the hot-mql window"),
        ("escalated", "Escalated lead lk_1: reassigning from Ana Silva"),
    ],
)
def test_subjects(stage: str, expected: str) -> None:
    assert subject(alert(stage)) == expected
