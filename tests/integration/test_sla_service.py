"""The SLA monitor's service and API on real SQLite and PostgreSQL (no broker needed).

Windows open on assignments, the ladder fires each stage once with its notifications,
contacts and reassignments close windows, and managers read open and overdue leads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.auth import Authenticator, TokenEntry, TokenSet, install, token_hash
from leadflow.config import LeadflowConfig, load_config
from leadflow.db.engine import session_factory
from leadflow.db.tables import notifications, outbox
from leadflow.events import Envelope, LeadActivity, LeadAssigned, new_event
from leadflow.problems import install_problem_handlers
from leadflow.processing import utcnow
from leadflow_sla import service
from leadflow_sla.api import router
from leadflow_sla.tables import sla_timers, sla_windows
from tests.fixtures.auth import AUTH, authorized
from tests.fixtures.stack import CONFIG

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # a Thursday

SLA_SECTION = """
sla:
  email: true
  webhooks:
    - url: https://hooks.example/sla
    - url: https://hooks.slack.example/T1
      format: slack
      stages: [warning, breached, escalated]
      teams: [smb]
  policies:
    - name: ladder
      window: 10m
      tiers: [mql]
      rules: [enterprise-size]
      warn_at_percent: 50
      escalate_after: 5m
      max_escalations: 1
    - name: office-hours
      window: 5m
      tiers: [mql]
      clock: business
    - name: slow
      window: 4h
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> LeadflowConfig:
    text = CONFIG.read_text().split("\nsla:\n")[0] + SLA_SECTION
    text = text.replace(
        "timezone: America/New_York}",
        "timezone: America/New_York, country: US, "
        "working_hours: [{days: [thu, fri], start: '09:00', end: '17:00'}]}",
    )
    path: Path = tmp_path_factory.mktemp("config") / "sla.yaml"
    path.write_text(text)
    return load_config(path)


def assigned(
    lead_key: str,
    rep_id: str = "ana",
    *,
    at: datetime = T0,
    team: str = "enterprise",
    rule: str = "enterprise-size",
    tier: str = "mql",
    previous: list[str] | None = None,
    seq: int = 1,
) -> Envelope:
    data = LeadAssigned(
        lead_key=lead_key,
        assignment_id=f"{lead_key}-{seq}",
        rep_id=rep_id,
        rep_name=rep_id.title(),
        team=team,
        rule=rule,
        tier=tier,
        reason="test",
        assigned_at=at,
        received_at=at,
        previous_rep_ids=previous or [],
        source="web",
    )
    type_ = "lead.reassigned" if previous else "lead.assigned"
    return new_event(type_, data, source="/test", time=at, event_id=f"e-{lead_key}-{seq}")


def activity(lead_key: str, kind: str, at: datetime) -> Envelope:
    data = LeadActivity(lead_key=lead_key, activity=kind, occurred_at=at, source="crm")
    return new_event(f"lead.{kind}", data, source="/test", time=at, event_id=f"e-{lead_key}-{kind}")


async def apply(
    engine: AsyncEngine, config: LeadflowConfig, event: Envelope, now: datetime
) -> list[datetime]:
    hints: list[datetime] = []
    async with session_factory(engine)() as session, session.begin():
        await service.apply_events(session, [event], config, now, hints.append)
    return hints


async def fire(engine: AsyncEngine, config: LeadflowConfig, now: datetime) -> int:
    async with session_factory(engine)() as session, session.begin():
        return await service.fire_due(session, config, "http://router.example", now)


async def alerts(engine: AsyncEngine) -> list[Envelope]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.payload).order_by(outbox.c.id))
        return [Envelope.from_bytes(p) for p in rows.scalars()]


async def queued(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                notifications.c.dedupe_key, notifications.c.channel, notifications.c.target
            ).order_by(notifications.c.id)
        )
        return [tuple(r) for r in rows.all()]


async def windows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(sla_windows).order_by(sla_windows.c.id))
        return [dict(r._mapping) for r in rows]


async def test_the_ladder_warns_the_rep_alerts_the_manager_and_escalates_once(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    hints = await apply(engine, config, assigned("lk_a"), T0)
    assert hints == [
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=10),
        T0 + timedelta(minutes=15),
    ]

    assert await fire(engine, config, T0 + timedelta(minutes=4)) == 0
    assert await fire(engine, config, T0 + timedelta(minutes=5, seconds=1)) == 1
    assert await fire(engine, config, T0 + timedelta(minutes=5, seconds=2)) == 0
    assert await fire(engine, config, T0 + timedelta(minutes=16)) == 2  # breach and escalation
    assert await fire(engine, config, T0 + timedelta(hours=1)) == 0

    events = await alerts(engine)
    assert [e.type for e in events] == ["sla.warning", "sla.breached", "sla.escalated"]
    warning, breach, escalation = (e.data for e in events)
    assert warning.stage == "warning"  # type: ignore[union-attr]
    assert "Ana Silva, lead lk_a is still waiting" in warning.message  # type: ignore[union-attr]
    assert "(in 4 min)" in warning.message  # type: ignore[union-attr]
    assert breach.manager_email == "grace@example.com"  # type: ignore[union-attr]
    assert breach.late_by_s == 360  # type: ignore[union-attr]
    assert "now 6 min overdue" in breach.message  # type: ignore[union-attr]
    assert "http://router.example/v1/leads/lk_a/routing" in breach.message  # type: ignore[union-attr]
    assert "escalation 1 of 1" in escalation.message  # type: ignore[union-attr]
    assert len({e.id for e in events}) == 3
    assert await queued(engine) == [
        ("sla:lk_a-1:warning:email:ana@example.com", "email", "ana@example.com"),
        ("sla:lk_a-1:breached:email:grace@example.com", "email", "grace@example.com"),
        (
            "sla:lk_a-1:breached:webhook:https://hooks.example/sla",
            "webhook",
            "https://hooks.example/sla",
        ),
        ("sla:lk_a-1:escalated:email:grace@example.com", "email", "grace@example.com"),
        (
            "sla:lk_a-1:escalated:webhook:https://hooks.example/sla",
            "webhook",
            "https://hooks.example/sla",
        ),
    ]
    [window] = await windows(engine)
    assert window["status"] == "open"  # nobody contacted the lead yet: still overdue
    assert window["warned_at"] == T0 + timedelta(minutes=5, seconds=1)
    assert window["breached_at"] == window["escalated_at"] == T0 + timedelta(minutes=16)


async def test_a_contact_closes_the_window_stops_the_ladder_and_measures_speed_to_lead(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    before = REGISTRY.get_sample_value("leadflow_sla_speed_to_lead_seconds_count") or 0.0
    await apply(engine, config, assigned("lk_b"), T0)
    await fire(engine, config, T0 + timedelta(minutes=6))  # the warning

    await apply(
        engine,
        config,
        activity("lk_b", "contacted", T0 + timedelta(minutes=7)),
        T0 + timedelta(minutes=7),
    )

    assert await fire(engine, config, T0 + timedelta(hours=1)) == 0
    assert [e.type for e in await alerts(engine)] == ["sla.warning"]
    [window] = await windows(engine)
    assert (window["status"], window["outcome"]) == ("closed", "contacted")
    assert window["contacted_at"] == T0 + timedelta(minutes=7)
    async with engine.connect() as conn:
        statuses = (
            await conn.execute(
                select(sla_timers.c.stage, sla_timers.c.status).order_by(sla_timers.c.id)
            )
        ).all()
    assert [tuple(s) for s in statuses] == [
        ("warning", "fired"),
        ("breached", "stopped"),
        ("escalated", "stopped"),
    ]
    assert REGISTRY.get_sample_value("leadflow_sla_speed_to_lead_seconds_count") == before + 1
    # A second contact, or an outcome, finds nothing open and changes nothing.
    await apply(
        engine,
        config,
        activity("lk_b", "accepted", T0 + timedelta(minutes=9)),
        T0 + timedelta(minutes=9),
    )
    assert (await windows(engine))[0]["outcome"] == "contacted"


async def test_a_reassignment_restarts_the_clock_for_the_new_rep_and_respects_the_repeat_limit(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    await apply(engine, config, assigned("lk_c"), T0)
    await fire(engine, config, T0 + timedelta(minutes=15))  # warning, breach, escalation
    later = T0 + timedelta(minutes=15, seconds=3)

    await apply(engine, config, assigned("lk_c", "ben", at=later, previous=["ana"], seq=2), later)

    first, second = await windows(engine)
    assert (first["status"], first["outcome"]) == ("closed", "reassigned")
    assert (second["rep_id"], second["status"], second["escalations"]) == ("ben", "open", 1)
    assert second["due_at"] == later + timedelta(minutes=10)
    # Ben is warned and breached, but the lead was escalated once already: no second escalation.
    assert await fire(engine, config, later + timedelta(hours=1)) == 2
    types = [(e.type, e.data.rep_id) for e in await alerts(engine)]  # type: ignore[union-attr]
    assert types[3:] == [("sla.warning", "ben"), ("sla.breached", "ben")]


async def test_a_redelivered_assignment_opens_no_second_window(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    event = assigned("lk_d")
    await apply(engine, config, event, T0)
    copy = new_event(event.type, event.data, source="/test", time=T0, event_id="another-id")

    assert await apply(engine, config, copy, T0) == []
    assert len(await windows(engine)) == 1


async def test_business_time_policies_wait_for_the_reps_working_hours(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    # Ben works Thu-Fri 09-17 New York time; a lead at 23:00 there on Friday is due Thursday after.
    friday_night = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)  # Fri 23:00 EST
    await apply(
        engine, config, assigned("lk_e", "ben", at=friday_night, rule="everyone-else"), friday_night
    )

    [window] = await windows(engine)
    assert window["policy"] == "office-hours"
    assert window["clock"] == "business"
    assert window["due_at"] == datetime(2026, 12, 3, 14, 5, tzinfo=UTC)  # Thu 09:05 EST


async def test_alerts_survive_configuration_changes(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            sla_timers.insert().values(
                assignment_id="gone-1",
                stage="breached",
                lead_key="lk_f",
                policy="retired-policy",
                rep_id="left-company",
                team="dissolved",
                assigned_at=T0,
                due_at=T0 + timedelta(minutes=5),
                status="open",
            )
        )

    assert await fire(engine, config, T0 + timedelta(minutes=6)) == 1

    [event] = await alerts(engine)
    assert event.data.rep_name == "left-company"  # type: ignore[union-attr]
    assert event.data.manager_email == ""  # type: ignore[union-attr]
    # No manager to email; the webhook for every team still hears of it.
    assert [channel for _, channel, _ in await queued(engine)] == ["webhook"]


async def test_webhooks_filter_by_team_and_slack_gets_every_stage(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    await apply(engine, config, assigned("lk_g", "dev", team="smb"), T0)

    await fire(engine, config, T0 + timedelta(hours=5))

    assert await queued(engine) == [
        ("sla:lk_g-1:warning:email:dev@example.com", "email", "dev@example.com"),
        (
            "sla:lk_g-1:warning:slack:https://hooks.slack.example/T1",
            "slack",
            "https://hooks.slack.example/T1",
        ),
        ("sla:lk_g-1:breached:email:henry@example.com", "email", "henry@example.com"),
        (
            "sla:lk_g-1:breached:webhook:https://hooks.example/sla",
            "webhook",
            "https://hooks.example/sla",
        ),
        (
            "sla:lk_g-1:breached:slack:https://hooks.slack.example/T1",
            "slack",
            "https://hooks.slack.example/T1",
        ),
        ("sla:lk_g-1:escalated:email:henry@example.com", "email", "henry@example.com"),
        (
            "sla:lk_g-1:escalated:webhook:https://hooks.example/sla",
            "webhook",
            "https://hooks.example/sla",
        ),
        (
            "sla:lk_g-1:escalated:slack:https://hooks.slack.example/T1",
            "slack",
            "https://hooks.slack.example/T1",
        ),
    ]


@pytest.fixture
async def api(engine: AsyncEngine, config: LeadflowConfig) -> AsyncIterator[httpx.AsyncClient]:
    app = authorized(FastAPI())
    install_problem_handlers(app)
    app.include_router(router)
    app.state.runtime = SimpleNamespace(
        settings=SimpleNamespace(app=config), sessions=session_factory(engine)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sla", headers=AUTH
    ) as client:
        yield client


async def test_managers_see_open_and_overdue_leads_per_team_and_rep(
    engine: AsyncEngine, config: LeadflowConfig, api: httpx.AsyncClient
) -> None:
    now = utcnow()
    late = now - timedelta(minutes=30)
    await apply(engine, config, assigned("lk_late", "ana", at=late), late)
    await apply(engine, config, assigned("lk_fresh", "ben", at=now), now)
    await apply(
        engine, config, assigned("lk_smb", "dev", at=now, team="smb", tier="watch", rule="x"), now
    )
    await apply(engine, config, assigned("lk_done", "ana", at=now), now)
    await apply(engine, config, activity("lk_done", "contacted", now), now)

    everything = (await api.get("/v1/sla/open")).json()
    assert [w["lead_key"] for w in everything["open"]] == ["lk_late", "lk_fresh", "lk_smb"]
    first = everything["open"][0]
    assert first["overdue"] is True
    assert first["overdue_by_s"] == pytest.approx(20 * 60, abs=5)
    assert first["age_s"] == pytest.approx(30 * 60, abs=5)
    assert first["rep_name"] == "Ana Silva"
    assert datetime.fromisoformat(first["due_at"]) == late + timedelta(minutes=10)
    overdue = (await api.get("/v1/sla/open", params={"overdue": "true"})).json()["open"]
    assert [w["lead_key"] for w in overdue] == ["lk_late"]
    assert [
        w["lead_key"] for w in (await api.get("/v1/sla/open", params={"rep": "ben"})).json()["open"]
    ] == ["lk_fresh"]

    team = (await api.get("/v1/sla/teams/enterprise")).json()
    assert [w["lead_key"] for w in team["open"]] == ["lk_late", "lk_fresh"]
    assert [w["lead_key"] for w in team["overdue"]] == ["lk_late"]
    rep = (await api.get("/v1/sla/reps/dev")).json()
    assert (rep["rep_name"], [w["lead_key"] for w in rep["open"]], rep["overdue"]) == (
        "Dev Patel",
        ["lk_smb"],
        [],
    )
    assert rep["open"][0]["policy"] == "slow"

    summary = {t["team"]: t for t in (await api.get("/v1/sla/summary")).json()["teams"]}
    assert (summary["enterprise"]["open"], summary["enterprise"]["overdue"]) == (2, 1)
    assert summary["enterprise"]["manager"] == "Grace Lee"
    assert summary["enterprise"]["oldest_age_s"] == pytest.approx(30 * 60, abs=5)
    assert {r["rep_id"]: (r["open"], r["overdue"]) for r in summary["enterprise"]["reps"]} == {
        "ana": (1, 1),
        "ben": (1, 0),
    }
    assert (summary["smb"]["open"], summary["smb"]["overdue"]) == (1, 0)

    history = (await api.get("/v1/sla/leads/lk_done")).json()
    [window] = history["windows"]
    assert (window["outcome"], [t["status"] for t in window["timers"]]) == (
        "contacted",
        ["stopped", "stopped", "stopped"],
    )


async def test_a_manager_token_limited_to_a_team_sees_only_that_teams_leads(
    engine: AsyncEngine, config: LeadflowConfig
) -> None:
    token = "lf_smb-manager-token-000000000000000"
    entry = TokenEntry(
        name="smb-manager", sha256=token_hash(token), scopes=("sla:read",), teams=("smb",)
    )
    app = FastAPI()
    install(app, Authenticator(TokenSet([entry])))
    install_problem_handlers(app)
    app.include_router(router)
    app.state.runtime = SimpleNamespace(
        settings=SimpleNamespace(app=config), sessions=session_factory(engine)
    )
    now = utcnow()
    await apply(engine, config, assigned("lk_ent", "ana", at=now), now)
    await apply(
        engine, config, assigned("lk_smb", "dev", at=now, team="smb", tier="watch", rule="x"), now
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sla",
        headers={"authorization": f"Bearer {token}"},
    ) as manager:
        listed = (await manager.get("/v1/sla/open")).json()["open"]
        assert [w["lead_key"] for w in listed] == ["lk_smb"]
        teams = (await manager.get("/v1/sla/summary")).json()["teams"]
        assert [t["team"] for t in teams] == ["smb"]
        assert (await manager.get("/v1/sla/teams/smb")).status_code == 200
        refused = await manager.get("/v1/sla/teams/enterprise")
        assert refused.status_code == 403
        assert refused.json()["detail"] == (
            "This token may not see team 'enterprise'; it sees smb."
        )
        assert (await manager.get("/v1/sla/open", params={"team": "enterprise"})).status_code == 403
        assert (await manager.get("/v1/sla/reps/ana")).json()["open"] == []
        assert (await manager.get("/v1/sla/leads/lk_ent")).status_code == 404
        assert (await manager.get("/v1/sla/leads/lk_smb")).status_code == 200


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        ("/v1/sla/teams/nobody", 404, "There is no team 'nobody'; GET /v1/sla/summary lists them."),
        ("/v1/sla/reps/nobody", 404, "There is no rep 'nobody'; GET /v1/sla/summary lists them."),
        ("/v1/sla/open?team=nobody", 404, "There is no team 'nobody'"),
        ("/v1/sla/leads/lk_unknown", 404, "No follow-up window was opened for lead 'lk_unknown'."),
    ],
)
async def test_the_api_says_what_it_does_not_know(
    api: httpx.AsyncClient, path: str, status: int, detail: str
) -> None:
    response = await api.get(path)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith(detail)


@pytest.mark.parametrize("query", ["limit=0", "limit=5000", "limit=x", "overdue=maybe"])
async def test_bad_query_parameters_get_field_errors(api: httpx.AsyncClient, query: str) -> None:
    response = await api.get(f"/v1/sla/open?{query}")

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == "query." + query.split("=")[0]


def test_payloads_are_json(config: LeadflowConfig) -> None:
    # The notification payload is stored as JSON: every alert field must serialize.
    assert orjson.dumps(assigned("lk_x").model_dump(mode="json"))
