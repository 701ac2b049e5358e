"""docker-compose.yml publishes only the intake's webhook port to the network, runs every
Leadflow service under production's rules with every secret required, keeps the intake's
spool on a volume, sends email to Mailpit, and lets Prometheus scrape each service.
(tests/integration/test_compose_stack.py starts its services.)"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from leadflow.auth import AuthSettings, new_token
from leadflow.config import load_config
from leadflow.settings import get_settings, secret_env_var
from tests.fixtures.compose import (
    COMPOSE,
    DOCKERFILE,
    PROMETHEUS,
    ROOT,
    MissingVariable,
    compose_file,
    env_file,
    example_variables,
    fresh_values,
    healthcheck_url,
    init_services,
    leadflow_services,
    published_ports,
    required_variables,
)

LEADFLOW_SERVICES = {"migrate", "intake", "scoring", "router", "sla-monitor"}


def services() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return dict(data["services"])


def running() -> dict[str, Any]:
    """The long-running Leadflow services (the init service aside), not interpolated."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    leadflow = leadflow_services(data)
    return {name: leadflow[name] for name in leadflow.keys() - init_services(data)}


def test_only_the_intake_is_published_beyond_loopback() -> None:
    published = {
        name: [str(port) for port in service.get("ports", [])]
        for name, service in services().items()
    }

    assert published.pop("intake") == ["8000:8000"]
    assert published["scoring"] == ["127.0.0.1:8001:8001"]
    for name, ports in published.items():
        assert all(port.startswith("127.0.0.1:") for port in ports), name


def test_every_leadflow_service_runs_in_production() -> None:
    for name in LEADFLOW_SERVICES:
        assert services()[name]["environment"]["LEADFLOW_ENV"] == "production", name


def test_every_required_variable_is_a_blank_of_env_example() -> None:
    required = required_variables(COMPOSE.read_text())
    blanks = {name for name, value in example_variables().items() if not value}

    assert required == blanks
    assert {"LEADFLOW_KEY_SECRET", "LEADFLOW_TOKENS", "POSTGRES_PASSWORD"} <= required


def test_a_missing_required_variable_stops_compose_with_its_sentence() -> None:
    values = fresh_values(new_token(), new_token())
    del values["LEADFLOW_KEY_SECRET"]

    with pytest.raises(MissingVariable, match="LEADFLOW_KEY_SECRET: set LEADFLOW_KEY_SECRET to"):
        compose_file(values)


def test_production_accepts_the_environment_of_every_leadflow_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compose = compose_file(env_file(tmp_path / ".env", fresh_values(new_token(), new_token())))
    leadflow = leadflow_services(compose)
    for name in leadflow.keys() - init_services(compose):
        environment = {str(k): str(v) for k, v in leadflow[name]["environment"].items()}
        config = environment["LEADFLOW_CONFIG"].replace("/app/config", str(ROOT / "config"))
        with monkeypatch.context() as patch:
            for variable in [v for v in os.environ if v.startswith("LEADFLOW_")]:
                patch.delenv(variable)
            for variable, value in {**environment, "LEADFLOW_CONFIG": config}.items():
                patch.setenv(variable, value)
            settings = get_settings()

            assert settings.env == "production", name
            assert settings.check(name) == [], name


def test_the_sources_of_the_compose_config_are_those_compose_has_secrets_for() -> None:
    [config_path] = {
        str(service["environment"]["LEADFLOW_CONFIG"]) for service in running().values()
    }
    config = load_config(Path(config_path.replace("/app/config", str(ROOT / "config"))))

    for name, service in running().items():
        secrets = {v for v in service["environment"] if re.match(r"LEADFLOW_SOURCE_\w+_SECRET", v)}
        assert secrets == {secret_env_var(source) for source in config.sources}, name


def test_the_intake_spools_on_a_named_volume_its_image_user_owns() -> None:
    intake = services()["intake"]
    spool = intake["environment"]["LEADFLOW_INTAKE_SPOOL_DIR"]
    [volume] = [v.split(":")[0] for v in intake["volumes"] if v.split(":")[1] == spool]
    dockerfile = DOCKERFILE.read_text()
    [user] = re.findall(r"(?m)^USER (\S+)$", dockerfile)

    assert volume in yaml.safe_load(COMPOSE.read_text())["volumes"]
    assert f"mkdir -p {spool} && chown -R {user}:{user} {spool.rsplit('/', 1)[0]}" in dockerfile
    assert dockerfile.index(f"chown -R {user}") < dockerfile.index(f"USER {user}")


def test_each_service_waits_for_the_migration_and_is_healthy_on_its_own_port() -> None:
    for name, service in running().items():
        depends = {need: how["condition"] for need, how in service["depends_on"].items()}
        [port] = published_ports(service)
        own_ports = [
            value
            for variable, value in service["environment"].items()
            if re.fullmatch(r"LEADFLOW_(INTAKE|SCORING|ROUTER|SLA)_PORT", variable)
        ]

        assert depends["migrate"] == "service_completed_successfully", name
        assert depends["kafka"] == depends["postgres"] == "service_healthy", name
        assert healthcheck_url(service) == (port, "/readyz"), name
        assert own_ports == [str(port)], name
    assert services()["migrate"]["command"] == ["db", "upgrade"]


def test_prometheus_scrapes_each_service_on_its_metrics_port() -> None:
    scrape = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    [job] = [job for job in scrape if job["job_name"] == "leadflow"]
    targets = {
        target.split(":")[0]: target.split(":")[1]
        for group in job["static_configs"]
        for target in group["targets"]
    }

    assert job["honor_labels"] is True
    assert targets == {
        name: service["environment"]["LEADFLOW_METRICS_PORT"] for name, service in running().items()
    }


def test_topics_have_as_many_replicas_as_the_single_broker_can_hold() -> None:
    brokers = len(
        str(services()["kafka"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]).split(",")
    )
    for name, service in running().items():
        environment = service["environment"]
        replicas = int(environment["LEADFLOW_KAFKA_REPLICATION_FACTOR"])
        in_sync = int(environment["LEADFLOW_KAFKA_MIN_INSYNC_REPLICAS"])
        assert 1 <= in_sync <= replicas <= brokers, name


def test_emails_go_to_mailpit_whose_web_ui_is_on_loopback() -> None:
    for name, service in running().items():
        assert service["environment"]["LEADFLOW_SMTP_HOST"] == "mailpit", name
        assert service["depends_on"]["mailpit"]["condition"] == "service_healthy", name
    assert services()["mailpit"]["ports"] == ["127.0.0.1:8025:8025"]


def test_the_console_asks_the_router_and_scoring_on_their_ports_with_a_token_they_accept(
    tmp_path: Path,
) -> None:
    console_token = new_token()
    compose = compose_file(env_file(tmp_path / ".env", fresh_values(new_token(), console_token)))
    environment = {name: s.get("environment", {}) for name, s in compose["services"].items()}
    sla = environment["sla-monitor"]

    assert sla["LEADFLOW_SLA_ROUTER_URL"] == (
        f"http://router:{environment['router']['LEADFLOW_ROUTER_PORT']}"
    )
    assert sla["LEADFLOW_SLA_SCORING_URL"] == (
        f"http://scoring:{environment['scoring']['LEADFLOW_SCORING_PORT']}"
    )
    assert sla["LEADFLOW_SLA_SERVICE_TOKEN"] == console_token
    # Alert links are for people: not the compose network's name of the router.
    assert sla["LEADFLOW_SLA_ROUTER_PUBLIC_URL"] == "http://localhost:8002"
    for name in ("router", "scoring"):
        tokens = AuthSettings(tokens=environment[name]["LEADFLOW_TOKENS"]).token_set()
        principal = tokens.find(console_token)
        assert principal is not None, f"{name} refuses the console's token"
        assert principal.allows("leads:read")
        assert principal.allows("admin"), "the Team page reads the router's reps (admin)"
