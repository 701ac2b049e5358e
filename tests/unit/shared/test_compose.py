"""docker-compose.yml publishes only the intake's webhook port to the network, and runs
every Leadflow service under production's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[3] / "docker-compose.yml"
LEADFLOW_SERVICES = {"migrate", "intake", "scoring", "router", "sla-monitor"}


def services() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return dict(data["services"])


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
