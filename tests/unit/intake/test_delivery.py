"""Broker down or slow: webhooks are still answered 202 from the spool, and relayed in order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from leadflow.bus import Headers
from leadflow.bus.memory import InMemoryBus
from leadflow.events import Envelope
from tests.fixtures import senders
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
        assert "leadflow_intake_spool_depth_events 5.0" in client.get("/metrics").text

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
        metrics = client.get("/metrics").text
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
        metrics = client.get("/metrics").text
    problem = refusal(response, 503)
    assert response.headers["retry-after"] == "5"
    assert "retry" in problem["detail"]
    assert ready.status_code == 503
    assert ready.json()["spool"]["writable"] is False
    assert 'leadflow_intake_webhooks_total{outcome="not_stored",source="web"} 1.0' in metrics
