"""Broker down or slow: webhooks are still answered 202 from the spool, and relayed in order."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from leadflow.bus import Headers
from leadflow.bus.memory import InMemoryBus
from leadflow.events import Envelope
from leadflow_intake.spool import Spool
from tests.fixtures import senders
from tests.fixtures.auth import AUTH
from tests.fixtures.intake import intake_client, refusal, send
from tests.fixtures.stack import lead_body


class SwitchableBus(InMemoryBus):
    """A bus that can be down (refuses), slow (never answers in time) or up."""

    def __init__(self) -> None:
        super().__init__()
        self.state = "up"

    async def publish(
        self, topic: str, key: str, value: bytes, headers: Headers | None = None
    ) -> None:
        if self.state == "down":
            raise ConnectionError("broker down")
        if self.state == "slow":
            await asyncio.sleep(3600)
        await super().publish(topic, key, value, headers)


def emails_on(bus: InMemoryBus) -> list[str]:
    out = []
    for value in bus.values("leads.received"):
        lead = Envelope.from_bytes(value).data.lead  # type: ignore[union-attr]
        out.append(lead.email or "")
    return out


def wait_until(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_broker_down_then_back_every_event_arrives_once_in_order(tmp_path: Path) -> None:
    bus = SwitchableBus()
    with intake_client(tmp_path, bus, relay_backoff_max_s=0.2) as client:
        assert send(client, "web", senders.standard(lead_body("a0@example.com"))).status_code == 202
        bus.state = "down"
        for i in range(1, 6):
            response = send(client, "web", senders.standard(lead_body(f"a{i}@example.com")))
            assert response.status_code == 202, response.text
        ready = client.get("/readyz").json()
        assert ready["ready"] is True
        assert ready["degraded"] is True
        assert ready["spool"]["depth"] == 5
        assert "leadflow_intake_spool_depth_events 5.0" in client.get("/metrics", headers=AUTH).text

        bus.state = "up"
        # While the spool drains, new webhooks queue behind it.
        for i in range(6, 9):
            assert (
                send(client, "web", senders.standard(lead_body(f"a{i}@example.com"))).status_code
                == 202
            )
        wait_until(lambda: client.get("/readyz").json()["spool"]["depth"] == 0)
        assert client.get("/readyz").json()["degraded"] is False

    assert emails_on(bus) == [f"a{i}@example.com" for i in range(9)]


def test_a_slow_broker_is_bounded_and_the_event_is_spooled(tmp_path: Path) -> None:
    bus = SwitchableBus()
    bus.state = "slow"
    with intake_client(tmp_path, bus, spool_after_s=0.05) as client:
        started = time.monotonic()
        response = send(client, "web", senders.standard(lead_body("slow@example.com")))
        took = time.monotonic() - started
        assert response.status_code == 202
        assert client.get("/readyz").json()["spool"]["depth"] == 1
        metrics = client.get("/metrics", headers=AUTH).text
    assert took < 5
    assert 'leadflow_intake_spooled_events_total{reason="timeout"}' in metrics
    assert bus.values("leads.received") == []


def test_spooled_events_outlive_the_process(tmp_path: Path) -> None:
    bus = SwitchableBus()
    bus.state = "down"
    with intake_client(tmp_path, bus) as client:
        for i in range(3):
            assert (
                send(client, "web", senders.standard(lead_body(f"k{i}@example.com"))).status_code
                == 202
            )
    assert bus.values("leads.received") == []

    bus.state = "up"
    with intake_client(tmp_path, bus) as client:
        wait_until(lambda: len(bus.values("leads.received")) == 3)
    assert emails_on(bus) == [f"k{i}@example.com" for i in range(3)]


def test_when_the_spool_cannot_write_the_answer_is_503(tmp_path: Path) -> None:
    bus = SwitchableBus()
    bus.state = "down"
    with intake_client(tmp_path / "spool", bus) as client:
        # The next segment file cannot be opened for writing (permissions do not stop root).
        (tmp_path / "spool" / f"{0:012d}.seg").mkdir()
        response = send(client, "web", senders.standard(lead_body("lost@example.com")))
        ready = client.get("/readyz")
        metrics = client.get("/metrics", headers=AUTH).text
    problem = refusal(response, 503)
    assert response.headers["retry-after"] == "5"
    assert "retry" in problem["detail"]
    assert ready.status_code == 503
    assert ready.json()["spool"]["writable"] is False
    assert 'leadflow_intake_webhooks_total{outcome="not_stored",source="web"} 1.0' in metrics


def no_space(*args: object, **kwargs: object) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def metric(client: TestClient, name: str, labels: dict[str, str]) -> float:
    """A sample of the intake's /metrics (0 when absent)."""
    for family in text_string_to_metric_families(client.get("/metrics", headers=AUTH).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_a_full_disk_is_503_and_readiness_recovers_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = SwitchableBus()
    bus.state = "down"
    with intake_client(tmp_path, bus, relay_backoff_max_s=0.2, retry_after_s=7) as client:
        with monkeypatch.context() as disk:
            disk.setattr(os, "write", no_space)
            response = send(client, "web", senders.standard(lead_body("full@example.com")))
            problem = refusal(response, 503)
            assert response.headers["retry-after"] == "7"
            assert "could not be stored" in problem["detail"]
            assert "retry" in problem["detail"]
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["spool"]["writable"] is False
        # The disk has room again: nobody has to post anything for readiness to come back.
        wait_until(lambda: client.get("/readyz").status_code == 200)
        assert client.get("/readyz").json()["spool"]["writable"] is True

        retried = send(client, "web", senders.standard(lead_body("full@example.com")))
        assert retried.status_code == 202, retried.text
        bus.state = "up"
        wait_until(lambda: client.get("/readyz").json()["spool"]["depth"] == 0)
    assert emails_on(bus) == ["full@example.com"]


def test_with_the_broker_up_a_full_disk_does_not_stop_the_intake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = SwitchableBus()
    with intake_client(tmp_path, bus) as client, monkeypatch.context() as disk:
        disk.setattr(os, "write", no_space)
        disk.setattr(os, "fsync", no_space)
        response = send(client, "web", senders.standard(lead_body("direct@example.com")))
        ready = client.get("/readyz")
    assert response.status_code == 202
    assert ready.status_code == 200
    assert emails_on(bus) == ["direct@example.com"]


def test_a_cursor_that_cannot_be_written_is_retried_not_relayed_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = SwitchableBus()
    bus.state = "down"
    failures: list[int] = []
    real_replace = Path.replace

    def replace(self: Path, target: Any) -> Path:
        if self.name == "cursor.tmp" and len(failures) < 3:
            failures.append(1)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    with intake_client(tmp_path, bus, relay_backoff_max_s=0.1) as client:
        for i in range(4):
            assert send(client, "web", senders.standard(lead_body(f"c{i}@example.com"))).status_code
        bus.state = "up"
        wait_until(lambda: client.get("/readyz").json()["spool"]["depth"] == 0)
        restarts = metric(
            client, "leadflow_task_restarts_total", {"service": "intake", "task": "spool-relay"}
        )
    assert len(failures) == 3
    assert restarts == 0  # retried in place, not by restarting the relay
    assert emails_on(bus) == [f"c{i}@example.com" for i in range(4)]


def test_a_relay_that_keeps_failing_is_restarted_and_named_until_it_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = SwitchableBus()
    bus.state = "down"
    with intake_client(tmp_path, bus) as client:
        for i in range(3):
            send(client, "web", senders.standard(lead_body(f"r{i}@example.com")))
        before = metric(
            client, "leadflow_task_restarts_total", {"service": "intake", "task": "spool-relay"}
        )
        with monkeypatch.context() as disk:
            disk.setattr(Spool, "peek", lambda *_: no_space())
            bus.state = "up"
            wait_until(lambda: client.get("/readyz").status_code == 503)
            ready = client.get("/readyz").json()
            assert "No space left" in ready["failing"]["spool-relay"]
            assert (
                metric(
                    client,
                    "leadflow_task_restarts_total",
                    {"service": "intake", "task": "spool-relay"},
                )
                >= before + 3
            )
            assert bus.values("leads.received") == []
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout_s=30)
        wait_until(lambda: client.get("/readyz").json()["spool"]["depth"] == 0)
        assert "failing" not in client.get("/readyz").json()
    assert emails_on(bus) == [f"r{i}@example.com" for i in range(3)]


def test_retries_of_a_webhook_that_was_not_stored_do_not_use_up_its_persons_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = SwitchableBus()
    bus.state = "down"
    body = lead_body("patient@example.com")
    with intake_client(tmp_path, bus, identity_burst=2) as client:
        with monkeypatch.context() as disk:
            disk.setattr(os, "write", no_space)
            for _ in range(5):
                refusal(send(client, "web", senders.standard(body, msg_id="msg_retried")), 503)
        wait_until(lambda: client.get("/readyz").status_code == 200)
        stored = send(client, "web", senders.standard(body, msg_id="msg_retried"))
    assert stored.status_code == 202, stored.text
