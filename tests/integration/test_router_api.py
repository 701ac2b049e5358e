"""The router's HTTP API on real databases: the "why" endpoint and the audited admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from leadflow.auth import Authenticator, AuthSettings, TokenSet, build_authenticator, install
from leadflow.db.engine import session_factory
from leadflow.events import LeadAssigned, new_event
from leadflow.problems import install_problem_handlers
from leadflow.runtime import get_runtime
from leadflow_router import admin, api, service
from tests.fixtures.auth import AUTH, TOKENS_ENV
from tests.fixtures.routing import make_config, scored
from tests.integration.test_routing_service import BIG, emitted, escalate

NOW = datetime.now(UTC)
CONFIG = make_config()
TOKENS = "ops:" + "o" * 30 + ", audit-bot:" + "b" * 30
OPS = {"authorization": "Bearer " + "o" * 30}


def router_auth(tokens: str | None = TOKENS) -> Authenticator:
    """Admin tokens given as LEADFLOW_ADMIN_TOKEN (`name:token` pairs) and the test token;
    nobody at all for None."""
    if tokens is None:
        return Authenticator(TokenSet([]))
    settings = AuthSettings(admin_token=SecretStr(tokens), tokens=TOKENS_ENV["LEADFLOW_TOKENS"])
    return build_authenticator("development", settings)


def app_for(engine: AsyncEngine, tokens: str | None = TOKENS) -> FastAPI:
    """The router's routes over `engine`, without the consumer runtime around them."""
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(api.router)
    app.include_router(admin.router)
    install(app, router_auth(tokens))
    runtime = SimpleNamespace(
        settings=SimpleNamespace(app=CONFIG), sessions=session_factory(engine)
    )
    app.dependency_overrides[get_runtime] = lambda: runtime
    return app


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_for(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        yield client


async def test_why_of_an_unknown_lead_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/leads/lk_nobody/routing", headers=AUTH)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "No routing decision has been taken for lead 'lk_nobody'" in response.json()["detail"]


async def test_why_explains_every_decision_and_keeps_the_history(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    event = new_event("lead.scored", scored(BIG, lead_key="lk_why", at=NOW), source="/t", time=NOW)
    async with session_factory(engine)() as session, session.begin():
        await service.route_scored(session, event, CONFIG, NOW)
    [first] = await emitted(engine)
    assert isinstance(first.data, LeadAssigned)
    await escalate(engine, CONFIG, first.data, NOW + timedelta(minutes=5))

    why = (await client.get("/v1/leads/lk_why/routing", headers=AUTH)).json()

    assert why["status"] == "assigned"
    assert why["current"]["rep_id"] == "ben"
    assert why["summary"] == (
        "Assigned to Ben Carter: rule 'enterprise-size' sends it to team 'enterprise'; "
        "round robin gives Ben Carter the next turn."
    )
    first_decision, second = why["decisions"]
    assert first_decision["kind"] == "route"
    assert [(c["rep_id"], c["outcome"]) for c in first_decision["candidates"]] == [
        ("ana", "chosen"),
        ("ben", "available"),
        ("chloe", "available"),
    ]
    assert second["kind"] == "reassign"
    assert second["candidates"][0] == {
        "rep_id": "ana",
        "rep_name": "Ana Silva",
        "outcome": "skipped",
        "why": "already missed this lead's follow-up",
    }
    assert [(h["seq"], h["rep_id"], h["close_reason"]) for h in why["history"]] == [
        (1, "ana", "escalated"),
        (2, "ben", None),
    ]


async def test_admin_api_is_disabled_without_a_token(engine: AsyncEngine) -> None:
    transport = httpx.ASGITransport(app=app_for(engine, tokens=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        response = await client.get("/v1/admin/reps", headers=OPS)

    assert response.status_code == 403
    assert "set LEADFLOW_TOKENS" in response.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing-token"),
        ({"authorization": "Basic b3BzOm9vbw=="}, "missing-token"),
        ({"authorization": "Bearer "}, "missing-token"),
        ({"authorization": "Bearer wrong"}, "bad-token"),
    ],
)
async def test_admin_api_refuses_missing_or_bad_tokens(
    client: httpx.AsyncClient, headers: dict[str, str], reason: str
) -> None:
    response = await client.patch("/v1/admin/reps/ana", json={"active": False}, headers=headers)

    assert response.status_code == 401
    assert response.json()["type"].endswith(reason)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_admin_changes_override_config_revert_and_are_audited(
    client: httpx.AsyncClient,
) -> None:
    changed = await client.patch(
        "/v1/admin/reps/ana", json={"max_per_day": 3, "languages": ["PT"]}, headers=OPS
    )
    assert changed.status_code == 200, changed.text
    view = changed.json()
    assert view["overrides"] == {"max_per_day": 3, "languages": ["pt"]}
    assert (view["effective"]["max_per_day"], view["effective"]["languages"]) == (3, ["pt"])
    assert view["available_now"] is True

    reverted = await client.patch("/v1/admin/reps/ana", json={"max_per_day": None}, headers=OPS)
    assert reverted.json()["overrides"] == {"languages": ["pt"]}
    assert reverted.json()["effective"]["max_per_day"] is None

    bot = {"authorization": "Bearer " + "b" * 30}
    audit = (await client.get("/v1/admin/audit?rep_id=ana", headers=bot)).json()["changes"]
    assert [(c["actor"], c["action"]) for c in audit] == [
        ("ops", "rep.update"),
        ("ops", "rep.update"),
    ]
    assert audit[0]["before"] == {"max_per_day": 3, "languages": ["pt"]}
    assert audit[0]["after"] == {"languages": ["pt"]}


async def test_out_of_office_is_added_shown_and_cancelled(client: httpx.AsyncClient) -> None:
    period = {
        "start": (NOW - timedelta(hours=1)).isoformat(),
        "end": (NOW + timedelta(days=2)).isoformat(),
        "note": "conference",
    }
    created = await client.post("/v1/admin/reps/ben/out-of-office", json=period, headers=OPS)
    assert created.status_code == 201, created.text
    absence_id = created.json()["id"]

    ben = (await client.get("/v1/admin/reps/ben", headers=OPS)).json()
    assert ben["available_now"] is False
    assert ben["unavailable_because"].startswith("out of office until ")
    assert [a["id"] for a in ben["absences"]] == [absence_id]

    cancelled = await client.delete(f"/v1/admin/reps/ben/out-of-office/{absence_id}", headers=OPS)
    assert cancelled.status_code == 204
    ben = (await client.get("/v1/admin/reps/ben", headers=OPS)).json()
    assert (ben["available_now"], ben["absences"]) == (True, [])
    missing = await client.delete("/v1/admin/reps/ben/out-of-office/999999", headers=OPS)
    assert missing.status_code == 404
    actions = [
        c["action"] for c in (await client.get("/v1/admin/audit", headers=OPS)).json()["changes"]
    ]
    assert actions == ["rep.out_of_office.cancel", "rep.out_of_office.add"]


async def test_the_roster_shows_every_rep_with_load_and_availability(
    client: httpx.AsyncClient,
) -> None:
    reps = (await client.get("/v1/admin/reps", headers=OPS)).json()["reps"]

    assert [r["id"] for r in reps] == ["ana", "ben", "chloe", "dev", "emma", "felix", "gus"]
    assert reps[0]["teams"] == ["enterprise"]
    assert reps[0]["load"] == {"today": 0, "open": 0}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("patch", "/v1/admin/reps/nobody", {"active": False}, 404, None),
        ("patch", "/v1/admin/reps/ana", {"max_per_day": -2}, 422, "max_per_day"),
        ("patch", "/v1/admin/reps/ana", {"shoe_size": 42}, 422, "shoe_size"),
        ("patch", "/v1/admin/reps/ana", {}, 422, "(body)"),
        (
            "patch",
            "/v1/admin/reps/ana",
            {"working_hours": [{"start": "9am", "end": "5pm"}]},
            422,
            "working_hours.0.start",
        ),
        (
            "post",
            "/v1/admin/reps/ana/out-of-office",
            {"start": "2026-12-01T10:00:00Z", "end": "2026-12-01T09:00:00Z"},
            422,
            "(body)",
        ),
        ("post", "/v1/admin/reps/ana/out-of-office", {"start": "2026-12-01T10:00:00"}, 422, "end"),
    ],
)
async def test_bad_admin_requests_get_field_errors(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, object],
    status: int,
    field: str | None,
) -> None:
    response = await client.request(method, path, json=body, headers=OPS)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert field in [e["field"] for e in response.json()["errors"]]


async def test_admin_changes_need_a_json_body(client: httpx.AsyncClient) -> None:
    wrong_type = await client.patch("/v1/admin/reps/ana", content=b"active=0", headers=OPS)
    broken = await client.patch(
        "/v1/admin/reps/ana",
        content=b"{",
        headers={**OPS, "content-type": "application/json"},
    )

    assert wrong_type.status_code == 415
    assert broken.status_code == 400
