"""What production refuses: weak or malformed secrets, development off loopback, outgoing
webhooks that are plain http or unsigned, an API nobody can call; and a service start
that refuses them with one line each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from rich.console import Console
from typer.testing import CliRunner

from leadflow.auth import Authenticator, TokenEntry, TokenSet, install, require, token_hash
from leadflow.production import (
    MIN_SECRET_BYTES,
    api_problem,
    is_loopback,
    weak_secret_problem,
)
from leadflow.settings import DEV_SECRETS, Settings
from leadflow.stack import announce, development_unless_told
from leadflow.webhook_targets import (
    SHARED_REP_SECRET_VAR,
    rep_secret_var,
    signing_secrets,
    webhook_targets,
)
from leadflow_cli.app import app as cli

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "example.yaml"
POSTGRES_URL = "postgresql+asyncpg://leadflow@db.internal:5432/leadflow"
# 32 random-looking bytes, base64: what `openssl rand -base64 32` prints.
STRONG = "whsec_c3Ryb25nLXNlY3JldC1mb3ItdGhlLXRlc3RzLTAxMjM0NTY="
SOURCE_VARIABLES = [f"LEADFLOW_SOURCE_{name.upper()}_SECRET" for name in DEV_SECRETS]
KEY_SECRET = "real-key-secret-for-the-tests-0123456789"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No `LEADFLOW_*` variable (the suite's LEADFLOW_ENV included) leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("LEADFLOW_"):
            monkeypatch.delenv(name)


@pytest.fixture
def strong_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """A strong secret of its own for each of the example's sources, and the key secret."""
    monkeypatch.setenv("LEADFLOW_KEY_SECRET", KEY_SECRET)
    for i, variable in enumerate(SOURCE_VARIABLES):
        monkeypatch.setenv(variable, f"real-source-secret-{i}-for-the-tests-0123456789")


def production(config: Path = EXAMPLE, **fields: Any) -> Settings:
    return Settings(env="production", database_url=POSTGRES_URL, config=config, **fields)


def configured(tmp_path: Path, edit: Any) -> Path:
    """The example configuration changed by `edit(data)`, saved under `tmp_path`."""
    data = yaml.safe_load(EXAMPLE.read_text())
    edit(data)
    path = tmp_path / "leadflow.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def with_webhooks(data: dict[str, Any]) -> None:
    data["reps"][0]["webhook"] = "https://hooks.example/ana"
    data["reps"][1]["webhook"] = "http://hooks.example/ben"
    data["routing"]["notify"]["crm_webhook"] = "https://crm.example/leadflow"
    data["sla"]["webhooks"] = [
        {"url": "https://alerts.example/sla", "secret_env": "SLA_ALERTS_SECRET"},
        {"url": "https://alerts.example/unsigned"},
        {"url": "https://hooks.slack.example/T0/B0/xyz", "format": "slack"},
    ]


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("short", "LEADFLOW_X is 5 bytes long; production needs a random secret of at least 24"),
        ("whsec_c2hvcnQ=", "LEADFLOW_X is 5 bytes long"),
        (
            f"{STRONG},{STRONG}",
            "LEADFLOW_X starts with whsec_ but the rest is not base64; the secrets of a "
            "rotation are separated by whitespace (a space or a newline), not commas.",
        ),
    ],
)
def test_weak_or_malformed_secrets(secret: str, problem: str) -> None:
    found = weak_secret_problem("LEADFLOW_X", secret)

    assert found is not None
    assert found.startswith(problem)
    assert secret not in found


@pytest.mark.parametrize(
    "secret", [STRONG, "x" * MIN_SECRET_BYTES, "a-marketo,secret-with-a-comma-0123"]
)
def test_strong_secrets(secret: str) -> None:
    assert weak_secret_problem("LEADFLOW_X", secret) is None


@pytest.mark.usefixtures("strong_sources")
def test_production_refuses_a_short_source_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_MARKETO_SECRET", "letmein")

    assert production().check() == [
        "source 'marketo': LEADFLOW_SOURCE_MARKETO_SECRET is 7 bytes long; production needs "
        "a random secret of at least 24 bytes (e.g. `echo whsec_$(openssl rand -base64 32)`)."
    ]


@pytest.mark.usefixtures("strong_sources")
def test_production_refuses_secrets_joined_by_a_comma(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_WEB_SECRET", f"{STRONG},{STRONG}")

    problems = production().check()

    assert len(problems) == 1
    assert problems[0].startswith(
        "source 'web': LEADFLOW_SOURCE_WEB_SECRET starts with whsec_ but the rest is not base64"
    )


@pytest.mark.usefixtures("strong_sources")
def test_production_checks_every_secret_of_a_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_WEB_SECRET", f"{STRONG}\nwhsec_c2hvcnQ=")

    assert [p.split(";")[0] for p in production().check()] == [
        "source 'web': LEADFLOW_SOURCE_WEB_SECRET is 5 bytes long"
    ]


@pytest.mark.usefixtures("strong_sources")
def test_production_without_anything_wrong_has_no_problem() -> None:
    assert production().check() == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("leadflow.internal", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_development_refuses_to_listen_on_a_network() -> None:
    settings = Settings(env="development", config=EXAMPLE, host="0.0.0.0")

    assert settings.check() == [
        "LEADFLOW_HOST is 0.0.0.0 but LEADFLOW_ENV is development: development accepts the "
        "secrets the README publishes, so it listens on loopback only (127.0.0.1); set "
        "LEADFLOW_ENV=production, with real secrets, to listen on a network."
    ]


@pytest.mark.usefixtures("strong_sources")
def test_production_may_listen_on_a_network() -> None:
    assert production(host="0.0.0.0").check() == []


def test_each_webhook_target_has_its_own_secret(tmp_path: Path) -> None:
    config = Settings(env="development", config=configured(tmp_path, with_webhooks)).app
    environ = {
        rep_secret_var("ana"): "ana-secret",
        rep_secret_var("ben"): "ben-secret",
        "LEADFLOW_ROUTER_CRM_WEBHOOK_SECRET": "crm-secret",
        "SLA_ALERTS_SECRET": " sla-secret\n",
    }

    assert signing_secrets(webhook_targets(config, "router"), environ) == {
        "https://hooks.example/ana": "ana-secret",
        "http://hooks.example/ben": "ben-secret",
        "https://crm.example/leadflow": "crm-secret",
    }
    assert signing_secrets(webhook_targets(config, "sla-monitor"), environ) == {
        "https://alerts.example/sla": "sla-secret"
    }
    assert rep_secret_var("ana") == "LEADFLOW_REP_ANA_WEBHOOK_SECRET"
    assert rep_secret_var("north-desk") == "LEADFLOW_REP_NORTH_DESK_WEBHOOK_SECRET"


@pytest.mark.usefixtures("strong_sources")
def test_production_refuses_plain_http_and_unsigned_webhooks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(rep_secret_var("ana"), STRONG)
    monkeypatch.setenv("LEADFLOW_ROUTER_CRM_WEBHOOK_SECRET", "short")
    settings = production(configured(tmp_path, with_webhooks))

    router = settings.check("router")
    sla = settings.check("sla-monitor")

    assert router == [
        "rep 'ben''s webhook is not an https URL; production posts webhooks over https only.",
        "rep 'ben''s webhook has no signing secret: set LEADFLOW_REP_BEN_WEBHOOK_SECRET; "
        "production refuses to post unsigned webhooks.",
        "routing.notify.crm_webhook: LEADFLOW_ROUTER_CRM_WEBHOOK_SECRET is 5 bytes long; "
        "production needs a random secret of at least 24 bytes "
        "(e.g. `echo whsec_$(openssl rand -base64 32)`).",
    ]
    # The Slack hook is not signed (Slack checks no signature) and its URL is never shown.
    assert sla == [
        "sla.webhooks[0] has no signing secret: set SLA_ALERTS_SECRET; production refuses "
        "to post unsigned webhooks.",
        "sla.webhooks[1] has no secret_env: name the variable that holds its signing secret; "
        "production refuses to post unsigned webhooks.",
    ]
    assert settings.check("intake") == []
    assert settings.check() == router + sla


@pytest.mark.usefixtures("strong_sources")
def test_production_refuses_a_plain_http_slack_hook(tmp_path: Path) -> None:
    def slack_over_http(data: dict[str, Any]) -> None:
        data["sla"]["webhooks"] = [{"url": "http://hooks.slack.example/x", "format": "slack"}]

    settings = production(configured(tmp_path, slack_over_http))

    assert settings.check("sla-monitor") == [
        "sla.webhooks[0] is not an https URL; production posts webhooks over https only."
    ]


def test_development_posts_plain_and_unsigned_webhooks(tmp_path: Path) -> None:
    settings = Settings(env="development", config=configured(tmp_path, with_webhooks))

    assert settings.check() == []


def test_the_one_secret_for_every_rep_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SHARED_REP_SECRET_VAR, STRONG)
    settings = Settings(env="development", config=configured(tmp_path, with_webhooks))

    assert settings.check("router") == [
        "LEADFLOW_ROUTER_REP_WEBHOOK_SECRET (one secret for every rep) is no longer read: "
        "give each rep's webhook its own secret in LEADFLOW_REP_<ID>_WEBHOOK_SECRET."
    ]
    assert settings.check("sla-monitor") == []


def api(*, tokens: int | None) -> FastAPI:
    """An app with one protected route; `tokens` configured (None: no authenticator)."""
    app = FastAPI()

    @app.get("/v1/things", dependencies=[require("leads:read")])
    async def things() -> list[str]:
        return []

    if tokens is not None:
        entries = [
            TokenEntry(name=f"t{i}", sha256=token_hash(f"token-{i}"), scopes=("leads:read",))
            for i in range(tokens)
        ]
        install(app, Authenticator(TokenSet(entries)))
    return app


def test_production_refuses_an_api_nobody_can_call() -> None:
    problem = (
        "LEADFLOW_TOKENS is not set: production refuses to serve an API nobody can call; "
        "make tokens with `leadflow tokens new NAME --scope SCOPE` (or set LEADFLOW_OIDC_ISSUER)."
    )

    assert api_problem(api(tokens=None), "production") == problem
    assert api_problem(api(tokens=0), "production") == problem
    assert api_problem(api(tokens=1), "production") is None
    assert api_problem(api(tokens=None), "development") is None


def test_an_api_without_protected_routes_needs_no_token() -> None:
    app = FastAPI()

    @app.post("/v1/webhooks/web")
    async def webhook() -> None:
        return None

    assert api_problem(app, "production") is None


def test_a_service_start_in_production_refuses_with_one_line_per_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing but a PostgreSQL URL set: production by default, and no source has a secret."""
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("LEADFLOW_CONFIG", str(EXAMPLE))
    monkeypatch.setenv("LEADFLOW_KEY_SECRET", KEY_SECRET)
    monkeypatch.setenv("LEADFLOW_SOURCE_WEB_SECRET", DEV_SECRETS["web"])

    result = CliRunner().invoke(cli, ["intake"])

    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[:2] == [
        "error: source 'web' uses the documented development secret; set "
        "LEADFLOW_SOURCE_WEB_SECRET to a real one in production.",
        "error: source 'crm' has no secret: set LEADFLOW_SOURCE_CRM_SECRET to the secret the "
        "sender signs with.",
    ]
    assert len(lines) == len(DEV_SECRETS)  # one line per source, however long


def test_a_service_refuses_sqlite_when_nobody_said_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADFLOW_CONFIG", str(EXAMPLE))

    result = CliRunner().invoke(cli, ["scoring"])

    assert result.exit_code == 2
    assert result.output.strip() == (
        "Configuration error: LEADFLOW_DATABASE_URL points at SQLite; production needs "
        "PostgreSQL (postgresql+asyncpg://...). Services run in production unless "
        "LEADFLOW_ENV=development; `leadflow run` sets it for the local stack."
    )


def test_the_local_stack_is_development_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    development_unless_told()
    assert os.environ["LEADFLOW_ENV"] == "development"

    monkeypatch.setenv("LEADFLOW_ENV", "production")
    development_unless_told()
    assert os.environ["LEADFLOW_ENV"] == "production"


def test_the_local_stack_says_it_runs_in_development() -> None:
    console = Console(record=True, width=200)

    assert announce(Settings(env="development", config=EXAMPLE), console)

    text = console.export_text()
    assert "DEVELOPMENT" in text
    assert "development secrets" in text
    assert "127.0.0.1 only" in text


def test_the_local_stack_refuses_development_on_a_network() -> None:
    console = Console(record=True, width=200)

    assert not announce(Settings(env="development", config=EXAMPLE, host="0.0.0.0"), console)

    assert "listens on loopback only" in console.export_text()
