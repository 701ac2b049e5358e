"""Who may call what: every route of every service, anonymous, with the wrong scope and with
the right one, on the apps the services really build (SQLite and PostgreSQL).

A route must say who may call it: `require(scope)` or `PUBLIC`. One that says neither fails
here, so a new route cannot ship open by forgetting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from leadflow.auth import (
    ADMIN,
    SCOPES,
    TokenEntry,
    dump_entry,
    is_public,
    require,
    route_scopes,
    token_hash,
)
from leadflow.metrics import serve_metrics_port
from leadflow.settings import Settings
from leadflow_intake.app import create_app as intake_app
from leadflow_intake.settings import IntakeSettings
from leadflow_router.app import create_app as router_app
from leadflow_scoring.app import create_app as scoring_app
from leadflow_sla.app import create_app as sla_app
from tests.fixtures.broker import free_port
from tests.fixtures.stack import CONFIG

SERVICES: dict[str, Callable[[Settings, Path], FastAPI]] = {
    "intake": lambda settings, tmp: intake_app(settings, IntakeSettings(spool_dir=tmp / "spool")),
    "scoring": lambda settings, _: scoring_app(settings),
    "router": lambda settings, _: router_app(settings),
    "sla-monitor": lambda settings, _: sla_app(settings),
}
# What a path parameter is filled with (an unknown lead or rep answers 404: not a 401/403).
PATH_VALUES = {"kind": "segment", "absence_id": "1"}
UNREACHABLE_BROKER = "127.0.0.1:9"
MATRIX_REP = "ana"


def token_for(scopes: frozenset[str]) -> str:
    return "lf_matrix-" + ("-".join(sorted(scopes)).replace(":", "_") or "none") + "-padding"


def entries() -> list[TokenEntry]:
    """A token with exactly each scope, and one with every scope but each one (and admin)."""
    kinds = {frozenset({scope}) for scope in SCOPES}
    kinds |= {frozenset(SCOPES) - {scope, ADMIN} for scope in SCOPES}
    # Each speaks for a rep, so that a rep's own routes (a claim) get past who is asking.
    return [
        TokenEntry(
            name=f"matrix-{i}",
            sha256=token_hash(token_for(scopes)),
            scopes=tuple(sorted(scopes)),
            rep=MATRIX_REP,
        )
        for i, scopes in enumerate(sorted(kinds, key=sorted))
        if scopes
    ]


@dataclass(frozen=True)
class Declared:
    """A route and who it says may call it."""

    method: str
    path: str
    scopes: frozenset[str]
    public: bool

    def url(self) -> str:
        return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PATH_VALUES.get(m[1], "x"), self.path)


def declared_routes(app: FastAPI) -> tuple[list[Declared], list[str]]:
    """The routes of `app` and who may call each; and the routes that do not say."""
    declared: list[Declared] = []
    undeclared: list[str] = []
    documents = {app.openapi_url, app.docs_url, app.redoc_url}
    if app.docs_url is not None:
        documents.add(app.swagger_ui_oauth2_redirect_url)
    # The routes as served: those of included routers with the routers' dependencies.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            if route.path not in documents - {None}:
                undeclared.append(f"{route.path!r} (not an API route)")
            continue
        scopes = frozenset(route_scopes(route.dependant))
        public = is_public(route.dependant)
        for method in sorted(route.methods or ()):
            if bool(scopes) == public:
                undeclared.append(f"{method} {route.path}")
            else:
                declared.append(Declared(method, str(route.path), scopes, public))
    return declared, undeclared


def settings_for(database_url: str) -> Settings:
    return Settings(
        env="development",
        config=CONFIG,
        database_url=database_url,
        kafka_bootstrap=UNREACHABLE_BROKER,
    )


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_TOKENS", "[" + ",".join(dump_entry(e) for e in entries()) + "]")
    monkeypatch.delenv("LEADFLOW_TOKENS_FILE", raising=False)
    monkeypatch.delenv("LEADFLOW_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("LEADFLOW_OIDC_ISSUER", raising=False)


@pytest.fixture
def client_of(
    tokens: None, database_url: str, tmp_path: Path
) -> Iterator[Callable[[str], TestClient]]:
    clients: list[TestClient] = []

    def make(service: str) -> TestClient:
        client = TestClient(SERVICES[service](settings_for(database_url), tmp_path))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_answers_only_the_scope_it_declares(
    service: str, client_of: Callable[[str], TestClient]
) -> None:
    client = client_of(service)
    assert isinstance(client.app, FastAPI)
    declared, undeclared = declared_routes(client.app)
    assert not undeclared, f"{service}: routes that declare neither a scope nor PUBLIC"
    wrong: list[str] = []
    for route in declared:
        body: dict[str, str] | None = {} if route.method in ("POST", "PUT", "PATCH") else None

        def call(token: str | None, route: Declared = route, body: object = body) -> int:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            response = client.request(route.method, route.url(), headers=headers, json=body)
            status: int = response.status_code
            return status

        if route.public:
            if (anonymous := call(None)) in (401, 403):
                wrong.append(f"{route.method} {route.path}: public, but {anonymous} without token")
            continue
        answers: dict[str, tuple[int, Callable[[int], bool]]] = {
            "anonymous": (call(None), lambda status: status == 401),
            "unknown token": (call("lf_nobody-knows-this-token-000000"), lambda s: s == 401),
            "wrong scope": (
                call(token_for(frozenset(SCOPES) - route.scopes - {ADMIN})),
                lambda status: status == 403,
            ),
            "right scope": (call(token_for(route.scopes)), lambda s: s not in (401, 403)),
            "admin": (call(token_for(frozenset({ADMIN}))), lambda s: s not in (401, 403)),
        }
        wrong += [
            f"{route.method} {route.path} {case}: {status}"
            for case, (status, expected) in answers.items()
            if not expected(status)
        ]
    assert not wrong, f"{service}:\n" + "\n".join(wrong)
    assert declared, f"{service} has no route at all"


def test_the_matrix_covers_every_read_route(client_of: Callable[[str], TestClient]) -> None:
    """The routes the issue names are in the matrix with the scope it gives them."""
    scopes: dict[str, frozenset[str]] = {}
    for service in SERVICES:
        app = client_of(service).app
        assert isinstance(app, FastAPI)
        for route in declared_routes(app)[0]:
            scopes[f"{route.method} {route.path}"] = route.scopes
    assert scopes["GET /v1/leads/{lead_key}/profile"] == {"leads:read"}
    assert scopes["GET /v1/leads/{lead_key}/routing"] == {"leads:read"}
    assert scopes["GET /v1/sla/open"] == {"sla:read"}
    assert scopes["GET /v1/reports/funnel"] == {"reports:read"}
    assert scopes["PUT /v1/reports/costs/{kind}/{name}"] == {"admin"}
    assert scopes["POST /v1/admin/leads/{lead_key}/reassign"] == {"admin"}
    assert scopes["GET /metrics"] == {"metrics:read"}


def test_a_route_that_declares_nothing_fails_the_matrix(tokens: None, tmp_path: Path) -> None:
    app = scoring_app(settings_for(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))

    @app.get("/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {"personal": "data"}

    @app.get("/v1/guarded", dependencies=[require("leads:read")])
    async def guarded() -> dict[str, str]:
        return {}

    app.mount("/static", FastAPI())
    _, undeclared = declared_routes(app)
    assert undeclared == ["GET /v1/forgotten", "'/static' (not an API route)"]


def test_openapi_declares_the_bearer_scheme_on_protected_routes_only(
    client_of: Callable[[str], TestClient],
) -> None:
    for service in SERVICES:
        client = client_of(service)
        document = client.get("/openapi.json").json()
        if service != "intake":  # only its /metrics needs a token, and it is not documented
            assert document["components"]["securitySchemes"]["HTTPBearer"] == {
                "type": "http",
                "scheme": "bearer",
                "description": "A Leadflow token or an OIDC access token.",
            }
        assert isinstance(client.app, FastAPI)
        for route in declared_routes(client.app)[0]:
            operation = document["paths"].get(route.path, {}).get(route.method.lower())
            if operation is None:  # not in the schema (/metrics)
                continue
            assert ("security" in operation) == (not route.public), (service, route.path)


@pytest.mark.parametrize("service", SERVICES)
def test_production_serves_no_api_documents(
    service: str, tokens: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        env="production",
        config=CONFIG,
        database_url="postgresql+asyncpg://leadflow@127.0.0.1:9/leadflow",
        kafka_bootstrap=UNREACHABLE_BROKER,
    )
    client = TestClient(SERVICES[service](settings, tmp_path))
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404, path
    development = TestClient(SERVICES[service](settings_for("sqlite://"), tmp_path))
    assert development.get("/openapi.json").status_code == 200


def test_metrics_on_a_port_of_their_own_need_no_token_and_leave_the_api_port(
    tokens: None, tmp_path: Path
) -> None:
    port = free_port()
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    settings = settings.model_copy(update={"metrics_port": port})
    app = SERVICES["router"](settings, tmp_path)
    assert TestClient(app).get("/metrics").status_code == 404
    server = serve_metrics_port(settings)
    assert server is not None
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 200
    assert "leadflow_build_info" in answer.text
