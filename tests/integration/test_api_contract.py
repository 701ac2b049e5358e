"""Every service's OpenAPI document is a contract a client can be generated from: typed
answers, problem+json refusals, explicit and unique operation ids, declared bodies.

Checked on the apps the services really build, and by generating a client from each
document with openapi-python-client and calling the app through it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from fastapi.utils import generate_unique_id

from leadflow.api_contract import operation_id
from leadflow.auth import TokenEntry, dump_entry, token_hash
from leadflow.db.engine import create_engine, session_factory
from leadflow.problems import PROBLEM_JSON
from leadflow.processing import utcnow
from leadflow.settings import Settings
from leadflow_intake.app import create_app as intake_app
from leadflow_intake.canonical import LeadBody, to_event
from leadflow_intake.settings import IntakeSettings
from leadflow_router.app import create_app as router_app
from leadflow_scoring import service
from leadflow_scoring.app import create_app as scoring_app
from leadflow_sla.app import create_app as sla_app
from tests.fixtures.keys import KEYS
from tests.fixtures.stack import CONFIG

SERVICES: dict[str, Callable[[Settings, Path], FastAPI]] = {
    "intake": lambda settings, tmp: intake_app(settings, IntakeSettings(spool_dir=tmp / "spool")),
    "scoring": lambda settings, _: scoring_app(settings),
    "router": lambda settings, _: router_app(settings),
    "sla-monitor": lambda settings, _: sla_app(settings),
}
# A not-ready `/readyz` answers its readiness report (what is missing), not a problem.
READINESS = ("/readyz", "get", "503")
GENERATOR = Path(sys.executable).with_name("openapi-python-client")
TOKEN = "lf_contract-reader-token-0123456789"
ADMIN_TOKEN = "lf_contract-admin-token-0123456789"
TOKENS = "[{}]".format(
    ",".join(
        dump_entry(TokenEntry(name=name, sha256=token_hash(token), scopes=scopes))
        for name, token, scopes in [
            ("contract-reader", TOKEN, ("leads:read", "reports:read", "sla:read")),
            ("contract-admin", ADMIN_TOKEN, ("admin",)),
        ]
    )
)


@pytest.fixture
def app_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], FastAPI]:
    monkeypatch.setenv("LEADFLOW_TOKENS", TOKENS)
    monkeypatch.delenv("LEADFLOW_TOKENS_FILE", raising=False)
    monkeypatch.delenv("LEADFLOW_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("LEADFLOW_OIDC_ISSUER", raising=False)
    settings = Settings(
        env="development",
        config=CONFIG,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'contract.db'}",
        kafka_bootstrap="127.0.0.1:9",
    )
    return lambda service: SERVICES[service](settings, tmp_path)


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_answer_is_typed_and_every_refusal_a_problem(
    app_of: Callable[[str], FastAPI], service: str
) -> None:
    spec = app_of(service).openapi()
    untyped, not_problems = [], []
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            for media_type, media in response.get("content", {}).items():
                schema = resolve(spec, media.get("schema", {}))
                if status.startswith("2") and "json" in media_type and "properties" not in schema:
                    untyped.append(f"{method.upper()} {path} {status}")
            if status.startswith(("4", "5")) and (path, method, status) != READINESS:
                content = response.get("content", {})
                if list(content) != [PROBLEM_JSON] or content[PROBLEM_JSON]["schema"] != {
                    "$ref": "#/components/schemas/ProblemDetails"
                }:
                    not_problems.append(f"{method.upper()} {path} {status}")

    assert untyped == []
    assert not_problems == []
    assert "HTTPValidationError" not in json.dumps(spec)
    problem = spec["components"]["schemas"]["ProblemDetails"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(problem["properties"])


@pytest.mark.parametrize("service", SERVICES)
def test_refusals_documented_where_a_route_can_refuse(
    app_of: Callable[[str], FastAPI], service: str
) -> None:
    spec = app_of(service).openapi()
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        if operation.get("parameters") or "requestBody" in operation:
            assert "422" in responses, f"{method} {path}"
        if path not in ("/healthz", "/readyz") and not path.startswith("/v1/webhooks/"):
            assert {"401", "403"} <= set(responses), f"{method} {path}"


@pytest.mark.parametrize("service", SERVICES)
def test_operation_ids_are_explicit_and_unique(
    app_of: Callable[[str], FastAPI], service: str
) -> None:
    app = app_of(service)
    spec = app.openapi()
    ids = [operation["operationId"] for _, _, operation in operations(spec)]
    routes = [
        context.original_route
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute) and context.original_route.include_in_schema
    ]

    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(operation_id(route) for route in routes)
    assert not {generate_unique_id(route) for route in routes} & set(ids)


def test_admin_bodies_are_declared(app_of: Callable[[str], FastAPI]) -> None:
    spec = app_of("router").openapi()
    bodies = {
        (path, method): operation["requestBody"]["content"]["application/json"]["schema"]
        for path, method, operation in operations(spec)
        if "requestBody" in operation
    }
    reassign = resolve(spec, bodies["/v1/admin/leads/{lead_key}/reassign", "post"])
    change = resolve(spec, bodies["/v1/admin/reps/{rep_id}", "patch"])
    absence = resolve(spec, bodies["/v1/admin/reps/{rep_id}/out-of-office", "post"])

    assert reassign["required"] == ["rep_id", "reason"]
    assert {"active", "max_open", "working_hours"} <= set(change["properties"])
    assert resolve(spec, change["properties"]["working_hours"]["anyOf"][0]["items"])["properties"]
    assert {"start", "end", "note"} == set(absence["properties"])
    cost = app_of("sla-monitor").openapi()["paths"]["/v1/reports/costs/{kind}/{name}"]["put"]
    assert resolve(
        spec | app_of("sla-monitor").openapi(),
        cost["requestBody"]["content"]["application/json"]["schema"],
    )["required"] == ["cost_per_lead"]


@pytest.mark.parametrize(
    ("service", "method", "path", "status", "detail"),
    [
        ("scoring", "get", "/v1/nothing", 404, "Not Found"),
        ("scoring", "post", "/healthz", 405, "Method Not Allowed"),
        ("scoring", "get", "/v1/leads/lk_x/profile", 401, "needs a token"),
        ("router", "get", "/v1/admin/reps", 401, "needs a token"),
        ("router", "get", "/v1/admin/reps?as=reader", 403, "admin"),
        ("sla-monitor", "get", "/v1/sla/summary", 401, "needs a token"),
        ("sla-monitor", "get", "/v1/reports/funnel", 401, "needs a token"),
        ("sla-monitor", "delete", "/v1/sla/summary", 405, "Method Not Allowed"),
    ],
)
def test_routing_refusals_are_problems(
    app_of: Callable[[str], FastAPI], service: str, method: str, path: str, status: int, detail: str
) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"} if "as=reader" in path else {}
    response = TestClient(app_of(service)).request(method, path, headers=headers)

    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert (body["status"], body["instance"]) == (status, path.split("?")[0])
    assert detail in body["detail"]


@pytest.mark.skipif(not GENERATOR.exists(), reason="openapi-python-client is a dev dependency")
@pytest.mark.parametrize("service", SERVICES)
def test_a_client_generated_from_the_document_works(
    app_of: Callable[[str], FastAPI], service: str, tmp_path: Path
) -> None:
    app = app_of(service)
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(app.openapi()))
    config = tmp_path / "generator.yaml"
    config.write_text("post_hooks: []\n")
    package = f"leadflow_{service.replace('-', '_')}_client"
    generated = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(document),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "generated" / package),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # A warning means an operation or a schema was left out of the client.
    assert "Warning" not in generated.stdout, generated.stdout

    sys.path.insert(0, str(tmp_path / "generated"))
    try:
        client_module = importlib.import_module(f"{package}.client")
        healthz = importlib.import_module(f"{package}.api.operations.operations_healthz")
        models = importlib.import_module(f"{package}.models")
        client = client_module.Client(base_url="http://service")
        client.set_async_httpx_client(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")
        )
        health = asyncio.run(healthz.asyncio(client=client))
        assert isinstance(health, models.Health)
        assert health.status == "ok"
        assert (
            models.ProblemDetails.from_dict(
                {"type": "t", "title": "Not found", "status": 404, "detail": "d", "instance": "/x"}
            ).status
            == 404
        )
    finally:
        sys.path.remove(str(tmp_path / "generated"))
        for name in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[name]


def test_scoring_answers_match_their_documented_models(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_TOKENS", TOKENS)
    monkeypatch.delenv("LEADFLOW_TOKENS_FILE", raising=False)
    settings = Settings(
        env="development", config=CONFIG, database_url=database_url, kafka_bootstrap="127.0.0.1:9"
    )
    lead = {"email": "ada@example.com", "company": {"name": "Analytical", "size": 400}}
    body = LeadBody.model_validate({"event": "lead", "activity": "form_fill", "lead": lead})
    event = to_event(body, keys=KEYS, source="web", delivery_id="d-1", now=utcnow())

    async def score() -> str:
        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session, session.begin():
                [scored] = await service.score_events(
                    session, [event], settings.app.scoring, KEYS, utcnow()
                )
        finally:
            await engine.dispose()
        return scored.lead_key

    key = asyncio.run(score())
    app = scoring_app(settings)
    schemas = app.openapi()["components"]["schemas"]
    reader, admin = ({"authorization": f"Bearer {t}"} for t in (TOKEN, ADMIN_TOKEN))
    with TestClient(app) as client:
        profile = client.get(f"/v1/leads/{key}/profile", headers=reader)
        unknown = client.get("/v1/leads/lk_nobody/profile", headers=reader)
        erased = client.delete(f"/v1/admin/people/{key}", headers=admin)
        again = client.delete(f"/v1/admin/people/{key}", headers=admin)
        never = client.delete("/v1/admin/people/lk_nobody", headers=admin)

    assert profile.status_code == 200, profile.text
    assert set(profile.json()) == set(schemas["LeadProfile"]["properties"])
    assert (profile.json()["lead_key"], profile.json()["identifiers"]) == (key, [key])
    assert [t["activity"] for t in profile.json()["touches"]] == ["form_fill"]
    assert (unknown.status_code, unknown.headers["content-type"]) == (404, PROBLEM_JSON)
    assert unknown.json()["detail"] == "No lead has the key 'lk_nobody'."
    assert erased.status_code == 202, erased.text
    assert set(erased.json()) == set(schemas["ErasureAnswer"]["properties"])
    assert (erased.json()["status"], erased.json()["lead_keys"]) == ("erasing", [key])
    assert (again.json()["status"], again.json()["then"]) == ("erased", {})
    assert (never.status_code, never.headers["content-type"]) == (404, PROBLEM_JSON)


@pytest.mark.parametrize(
    ("service", "method", "path", "body", "status", "field"),
    [
        ("router", "get", "/v1/leads/lk_nobody/routing", None, 404, None),
        ("router", "get", "/v1/admin/audit?limit=0", None, 422, "query.limit"),
        ("router", "get", "/v1/admin/reps/nobody", None, 404, None),
        ("router", "patch", "/v1/admin/reps/ana", {"max_open": -1}, 422, "max_open"),
        ("router", "patch", "/v1/admin/reps/ana", "max_open=1", 415, None),
        ("router", "post", "/v1/admin/leads/lk_x/reassign", {"rep_id": "ben"}, 422, "reason"),
        ("sla-monitor", "get", "/v1/sla/leads/lk_nobody", None, 404, None),
        ("sla-monitor", "get", "/v1/sla/open?limit=0", None, 422, "query.limit"),
        ("sla-monitor", "get", "/v1/sla/teams/nobody", None, 404, None),
        ("sla-monitor", "get", "/v1/reports/funnel?from=last+tuesday", None, 422, "query.from"),
        ("sla-monitor", "get", "/v1/reports/leads/lk_nobody", None, 404, None),
        (
            "sla-monitor",
            "put",
            "/v1/reports/costs/segment/smb",
            {"cost_per_lead": -1},
            422,
            "cost_per_lead",
        ),
        ("sla-monitor", "delete", "/v1/reports/costs/campaign/none", None, 404, None),
        ("scoring", "get", "/v1/leads/lk_nobody/profile", None, 404, None),
    ],
)
def test_unhappy_paths_answer_problems(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    field: str | None,
) -> None:
    monkeypatch.setenv("LEADFLOW_TOKENS", TOKENS)
    monkeypatch.delenv("LEADFLOW_TOKENS_FILE", raising=False)
    settings = Settings(
        env="development", config=CONFIG, database_url=database_url, kafka_bootstrap="127.0.0.1:9"
    )
    admin = method != "get" or "/admin/" in path
    headers = {"authorization": f"Bearer {ADMIN_TOKEN if admin else TOKEN}"}
    content = {"json": body} if not isinstance(body, str) else {"content": body}
    if isinstance(body, str):
        headers["content-type"] = "application/x-www-form-urlencoded"
    with TestClient(SERVICES[service](settings, Path())) as client:
        response = client.request(method, path, headers=headers, **content)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert (problem["status"], problem["instance"]) == (status, path.split("?")[0])
    assert problem["detail"].endswith(".")
    assert [e["field"] for e in problem.get("errors", [])] == ([field] if field else [])
