"""API tokens: the settings that hold them, the command that makes them, the local stack's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from leadflow.auth import (
    DEV_TOKEN,
    AuthSettings,
    build_authenticator,
    client_token,
    dump_entry,
    new_token,
    token_hash,
)
from leadflow.settings import ConfigError, Settings
from leadflow.stack import TOKEN_SETTINGS, development_token
from leadflow_cli.app import app

TOKEN_VARS = (*TOKEN_SETTINGS, "LEADFLOW_OIDC_AUDIENCE")


@pytest.fixture(autouse=True)
def no_token_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TOKEN_VARS:
        # Set, then unset: whatever a test sets is undone afterwards.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


async def test_the_command_prints_a_token_once_and_the_entry_that_lets_it_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = CliRunner().invoke(
        app,
        ["tokens", "new", "ana", "--scope", "leads:claim", "--scope", "leads:read", "--rep", "ana"],
    )
    assert result.exit_code == 0, result.output
    token, line = result.stdout.strip().splitlines()
    entry = json.loads(line)
    assert entry == {
        "name": "ana",
        "sha256": token_hash(token),
        "scopes": ["leads:claim", "leads:read"],
        "rep": "ana",
    }
    assert token not in line
    monkeypatch.setenv("LEADFLOW_TOKENS", f"[{line}]")
    principal = await build_authenticator("production").principal(token)
    assert principal is not None
    assert (principal.name, principal.scopes, principal.rep) == (
        "ana",
        frozenset({"leads:claim", "leads:read"}),
        "ana",
    )
    assert await build_authenticator("production").principal(new_token()) is None


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["x", "--scope", "sla:write"], "no scope is called 'sla:write'"),
        (["bad name", "--scope", "admin"], "name: up to 64 letters"),
    ],
)
def test_the_command_refuses_unknown_scopes_and_bad_names(arguments: list[str], error: str) -> None:
    result = CliRunner().invoke(app, ["tokens", "new", *arguments])
    assert result.exit_code == 2
    assert error in " ".join(result.output.split())
    assert "lf_" not in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LEADFLOW_TOKENS", "[{", "LEADFLOW_TOKENS is not valid JSON or YAML"),
        (
            "LEADFLOW_TOKENS",
            '[{"name": "a", "sha256": "00", "scopes": ["admin"]}]',
            "LEADFLOW_TOKENS, token entry 0: sha256",
        ),
        (
            "LEADFLOW_TOKENS",
            '[{"name": "a", "sha256": "' + "0" * 64 + '", "scopes": ["root"]}]',
            "LEADFLOW_TOKENS, token entry 0: scopes.0",
        ),
        ("LEADFLOW_ADMIN_TOKEN", "ops:short", "LEADFLOW_ADMIN_TOKEN: the token of 'ops'"),
        ("LEADFLOW_TOKENS_FILE", "/nonexistent/tokens.yaml", "LEADFLOW_TOKENS_FILE"),
        ("LEADFLOW_OIDC_LEEWAY_S", "-1", "LEADFLOW_OIDC_LEEWAY_S: Input should be"),
    ],
)
def test_a_bad_token_setting_stops_the_service_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        build_authenticator("development")
    assert message in str(refused.value)


def test_tokens_come_from_a_yaml_file(tmp_path: Path) -> None:
    token = new_token()
    path = tmp_path / "tokens.yaml"
    path.write_text(
        f"tokens:\n  - name: ops\n    sha256: {token_hash(token)}\n    scopes: [sla:read]\n"
    )
    authenticator = build_authenticator("production", AuthSettings(tokens_file=path))
    assert len(authenticator.tokens) == 1


def test_production_refuses_no_tokens_and_the_development_token() -> None:
    with pytest.raises(ConfigError, match="LEADFLOW_TOKENS is not set"):
        build_authenticator("production")
    assert not build_authenticator("development").enabled
    dev = f'[{{"name": "dev", "sha256": "{token_hash(DEV_TOKEN)}", "scopes": ["admin"]}}]'
    with pytest.raises(ConfigError, match="development token"):
        build_authenticator("production", AuthSettings(tokens=dev))


def test_the_local_stack_gives_development_its_token_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console = Console(record=True, width=200)
    development_token(Settings(env="development"), console)
    assert DEV_TOKEN in console.export_text()
    authenticator = build_authenticator("development")
    assert authenticator.tokens.find(DEV_TOKEN) is not None
    # A configured token, or production, is left alone.
    monkeypatch.setenv("LEADFLOW_TOKENS", "[]")
    quiet = Console(record=True)
    development_token(Settings(env="development"), quiet)
    assert os.environ["LEADFLOW_TOKENS"] == "[]"
    assert quiet.export_text() == ""


def test_client_commands_send_the_given_token_else_developments() -> None:
    assert client_token("production", "lf_given") == "lf_given"
    assert client_token("development") == DEV_TOKEN
    assert client_token("production") is None


def test_an_entry_round_trips_through_its_json_line() -> None:
    line = dump_entry(
        AuthSettings(tokens='[{"name": "a", "sha256": "' + "a" * 64 + '", "scopes": ["admin"]}]')
        .token_set()
        .entries[0]
    )
    assert json.loads(line) == {"name": "a", "sha256": "a" * 64, "scopes": ["admin"]}
