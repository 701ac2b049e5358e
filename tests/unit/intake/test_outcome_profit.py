"""A won deal may carry its gross profit; the intake passes it on, and refuses it elsewhere."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from leadflow.bus.memory import InMemoryBus
from leadflow.events import Envelope, LeadActivity
from leadflow.settings import DEV_SECRETS, Settings
from leadflow.webhooks import sign
from leadflow_intake.app import create_app
from leadflow_intake.settings import IntakeSettings
from tests.fixtures.stack import CONFIG

KEY = "lk_0123456789abcdef01234567"


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.fixture
def client(bus: InMemoryBus) -> Iterator[TestClient]:
    app = create_app(Settings(config=CONFIG), IntakeSettings(), publisher=bus)
    with TestClient(app) as client:
        yield client


def post_crm(client: TestClient, body: dict[str, object]) -> object:
    raw = orjson.dumps(body)
    ts = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": f"msg_{body['event']}",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(DEV_SECRETS["crm"], f"msg_{body['event']}", ts, raw),
    }
    return client.post("/v1/webhooks/crm", content=raw, headers=headers)


def test_a_won_deal_carries_amount_and_profit(client: TestClient, bus: InMemoryBus) -> None:
    body = {
        "event": "won",
        "lead_key": KEY,
        "occurred_at": "2026-11-02T10:00:00Z",
        "amount": 5000,
        "profit": 3250.5,
        "currency": "USD",
    }
    response = post_crm(client, body)
    assert response.status_code == 202, response.text  # type: ignore[attr-defined]
    [record] = bus.topics["leads.activity"]
    data = Envelope.from_bytes(record.value).data
    assert isinstance(data, LeadActivity)
    assert (data.amount, data.profit) == (5000.0, 3250.5)


def test_profit_on_anything_but_a_won_deal_is_refused(client: TestClient, bus: InMemoryBus) -> None:
    body = {"event": "lost", "lead_key": KEY, "occurred_at": "2026-11-02T10:00:00Z", "profit": 10}
    response = post_crm(client, body)
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert "profit is only reported with a won deal" in response.text  # type: ignore[attr-defined]
    assert bus.topics["leads.activity"] == []
