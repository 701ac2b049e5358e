"""Settings from `LEADFLOW_*` variables: source secrets, dev defaults and production checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from leadflow.keys import DEV_KEY_SECRET, LeadKeys, unsalted_key
from leadflow.settings import (
    DEFAULT_SQLITE_URL,
    DEV_SECRETS,
    ConfigError,
    Settings,
    get_settings,
    secret_env_var,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "example.yaml"
POSTGRES_URL = "postgresql+asyncpg://leadflow@db.internal:5432/leadflow"
REAL_WEB_SECRET = "whsec_cmVhbC13ZWItc2VjcmV0LWZvci10ZXN0cw=="
REAL_CRM_SECRET = "whsec_cmVhbC1jcm0tc2VjcmV0LWZvci10ZXN0cw=="
REAL_KEY_SECRET = "real-key-secret-for-the-tests-0123456789"
OLD_KEY_SECRET = "old-key-secret-for-the-tests-9876543210"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No `LEADFLOW_*` variable of the machine running the tests leaks into them."""
    for name in list(os.environ):
        if name.startswith("LEADFLOW_"):
            monkeypatch.delenv(name)


def development() -> Settings:
    """Development settings on the example configuration."""
    return Settings(env="development", config=EXAMPLE)


def production() -> Settings:
    """Production settings on PostgreSQL and the example configuration."""
    return Settings(
        env="production", database_url=POSTGRES_URL, config=EXAMPLE, key_secret=REAL_KEY_SECRET
    )


@pytest.mark.parametrize(
    ("source", "variable"),
    [
        ("web", "LEADFLOW_SOURCE_WEB_SECRET"),
        ("crm", "LEADFLOW_SOURCE_CRM_SECRET"),
        ("partner-portal", "LEADFLOW_SOURCE_PARTNER_PORTAL_SECRET"),
        ("events_2026", "LEADFLOW_SOURCE_EVENTS_2026_SECRET"),
    ],
)
def test_secret_env_var(source: str, variable: str) -> None:
    assert secret_env_var(source) == variable


def test_secret_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_PARTNER_PORTAL_SECRET", REAL_WEB_SECRET)

    assert development().source_secrets("partner-portal") == [REAL_WEB_SECRET]


@pytest.mark.parametrize(
    "value",
    [
        "whsec_old whsec_new",
        "whsec_old\nwhsec_new",
        "  whsec_old \twhsec_new\n",
    ],
)
def test_several_secrets_during_a_rotation(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_WEB_SECRET", value)

    assert development().source_secrets("web") == ["whsec_old", "whsec_new"]


@pytest.mark.parametrize(("source", "secret"), sorted(DEV_SECRETS.items()))
def test_development_falls_back_to_the_documented_secrets(source: str, secret: str) -> None:
    assert development().source_secrets(source) == [secret]


def test_environment_overrides_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_WEB_SECRET", REAL_WEB_SECRET)

    assert development().source_secrets("web") == [REAL_WEB_SECRET]


def test_a_comma_is_part_of_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_MARKETO_SECRET", "shared,secret-with-a-comma")

    assert development().source_secrets("marketo") == ["shared,secret-with-a-comma"]


@pytest.mark.parametrize("value", ["", " ", "\n\t"])
def test_blank_variable_means_no_secret(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_WEB_SECRET", value)

    assert development().source_secrets("web") == [DEV_SECRETS["web"]]
    assert production().source_secrets("web") == []


def test_source_without_a_documented_secret_has_none_in_development() -> None:
    assert development().source_secrets("shop") == []


@pytest.mark.parametrize("source", ["web", "crm", "shop"])
def test_production_has_no_default_secret(source: str) -> None:
    assert production().source_secrets(source) == []


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_ENV", "production")
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("LEADFLOW_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("LEADFLOW_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("LEADFLOW_CONFIG", str(EXAMPLE))

    settings = Settings()

    assert settings.env == "production"
    assert settings.database_url == POSTGRES_URL
    assert settings.topic_partitions == 12
    assert settings.topic("leads.received") == "staging.leads.received"
    assert settings.app.routing.fallback_team == "smb"


def test_production_is_the_default() -> None:
    with pytest.raises(ValidationError, match="production needs PostgreSQL"):
        Settings()

    assert Settings(database_url=POSTGRES_URL).env == "production"


def test_development_defaults() -> None:
    settings = Settings(env="development")

    assert settings.database_url == DEFAULT_SQLITE_URL
    assert settings.config == Path("config/example.yaml")
    assert settings.topic("leads.received") == "leads.received"


@pytest.mark.parametrize(
    "url", [DEFAULT_SQLITE_URL, "sqlite:///leadflow.db", "sqlite+aiosqlite:///:memory:"]
)
def test_production_refuses_sqlite(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(env="production", database_url=url)

    assert caught.value.errors()[0]["msg"] == (
        "Value error, LEADFLOW_DATABASE_URL points at SQLite; production needs PostgreSQL "
        "(postgresql+asyncpg://...). Services run in production unless "
        "LEADFLOW_ENV=development; `leadflow run` sets it for the local stack."
    )


def test_get_settings_reports_sqlite_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_ENV", "production")

    with pytest.raises(ConfigError, match="production needs PostgreSQL"):
        get_settings()


def test_get_settings_of_a_service_is_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", POSTGRES_URL)

    assert get_settings().env == "production"


@pytest.mark.parametrize(("given", "env"), [(None, "development"), ("production", "production")])
def test_get_settings_of_a_client_is_development_unless_told(
    monkeypatch: pytest.MonkeyPatch, given: str | None, env: str
) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", POSTGRES_URL)
    if given is not None:
        monkeypatch.setenv("LEADFLOW_ENV", given)

    assert get_settings(client=True).env == env


def test_get_settings_reports_an_unreadable_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LEADFLOW_ENV", "development")
    missing = tmp_path / "missing.yaml"
    monkeypatch.setenv("LEADFLOW_CONFIG", str(missing))

    with pytest.raises(ConfigError) as caught:
        get_settings()

    assert str(caught.value) == f"{missing}: cannot read the file (No such file or directory)"


def test_get_settings_loads_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_ENV", "development")
    monkeypatch.setenv("LEADFLOW_CONFIG", str(EXAMPLE))

    assert list(get_settings().app.sources) == [
        "web",
        "crm",
        "hubspot",
        "ivr",
        "callrail",
        "marketo",
        "import",
    ]


def test_development_check_passes_on_documented_secrets() -> None:
    assert development().check() == []


@pytest.fixture
def other_sources_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real secrets for the example's sources besides `web` and `crm`."""
    for name in ("HUBSPOT", "IVR", "CALLRAIL", "MARKETO", "IMPORT"):
        monkeypatch.setenv(
            f"LEADFLOW_SOURCE_{name}_SECRET", f"real-{name.lower()}-secret-0123456789"
        )


@pytest.mark.usefixtures("other_sources_signed")
def test_production_check_passes_with_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_WEB_SECRET", REAL_WEB_SECRET)
    monkeypatch.setenv("LEADFLOW_SOURCE_CRM_SECRET", REAL_CRM_SECRET)

    assert production().check() == []


@pytest.mark.usefixtures("other_sources_signed")
def test_production_check_requires_a_secret_per_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_CRM_SECRET", REAL_CRM_SECRET)

    assert production().check() == [
        "source 'web' has no secret: set LEADFLOW_SOURCE_WEB_SECRET to the secret the "
        "sender signs with."
    ]


@pytest.mark.parametrize(
    "web_secret",
    [
        DEV_SECRETS["web"],
        DEV_SECRETS["crm"],
        f"{REAL_WEB_SECRET} {DEV_SECRETS['web']}",
    ],
)
@pytest.mark.usefixtures("other_sources_signed")
def test_production_check_refuses_development_secrets(
    monkeypatch: pytest.MonkeyPatch, web_secret: str
) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_WEB_SECRET", web_secret)
    monkeypatch.setenv("LEADFLOW_SOURCE_CRM_SECRET", DEV_SECRETS["crm"])

    problems = production().check()

    assert problems == [
        "source 'web' uses the documented development secret; "
        "set LEADFLOW_SOURCE_WEB_SECRET to a real one in production.",
        "source 'crm' uses the documented development secret; "
        "set LEADFLOW_SOURCE_CRM_SECRET to a real one in production.",
    ]
    assert not any(secret in problem for problem in problems for secret in DEV_SECRETS.values())


def test_development_check_accepts_development_secrets_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_WEB_SECRET", DEV_SECRETS["web"])

    assert development().check() == []


def test_development_derives_keys_with_the_documented_secret() -> None:
    assert development().lead_keys().key("ana@example.com") == LeadKeys(DEV_KEY_SECRET).key(
        "ana@example.com"
    )
    assert development().check() == []


def test_keys_follow_the_secret_and_a_rotation_names_the_previous_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADFLOW_KEY_SECRET", REAL_KEY_SECRET)
    monkeypatch.setenv("LEADFLOW_KEY_SECRET_PREVIOUS", f"{OLD_KEY_SECRET}  {DEV_KEY_SECRET}")
    monkeypatch.setenv("LEADFLOW_KEY_PREVIOUS_UNSALTED", "true")

    keys = Settings(env="development", config=EXAMPLE).lead_keys()

    assert keys.candidates("ana@example.com") == [
        LeadKeys(REAL_KEY_SECRET).key("ana@example.com"),
        LeadKeys(OLD_KEY_SECRET).key("ana@example.com"),
        LeadKeys(DEV_KEY_SECRET).key("ana@example.com"),
        unsalted_key("ana@example.com"),
    ]


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (None, "LEADFLOW_KEY_SECRET is not set: lead keys are derived from it; "),
        ("too-short-a-secret", "LEADFLOW_KEY_SECRET is 18 bytes long; "),
        (DEV_KEY_SECRET, "LEADFLOW_KEY_SECRET is the documented development secret; "),
    ],
)
@pytest.mark.usefixtures("other_sources_signed")
def test_production_refuses_a_missing_short_or_development_key_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str | None, problem: str
) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_WEB_SECRET", REAL_WEB_SECRET)
    monkeypatch.setenv("LEADFLOW_SOURCE_CRM_SECRET", REAL_CRM_SECRET)
    settings = Settings(
        env="production", database_url=POSTGRES_URL, config=EXAMPLE, key_secret=secret
    )
    advice = "set it to a random secret of at least 32 bytes (`openssl rand -base64 48`)."

    assert settings.check() == [problem + advice]
    with pytest.raises(ConfigError) as refused:
        settings.lead_keys()
    assert str(refused.value) == problem + advice
