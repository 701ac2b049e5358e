"""The webhook endpoint on the in-memory bus: what is accepted, what is refused and why."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from leadflow.bus.memory import InMemoryBus
from leadflow.events import Envelope, LeadActivity, LeadReceived
from leadflow.settings import DEV_SECRETS, Settings
from leadflow.webhooks import sign
from leadflow_intake.adapters.standard import StandardAdapter
from leadflow_intake.app import create_app
from leadflow_intake.settings import IntakeSettings
from tests.fixtures.auth import AUTH, authenticator
from tests.fixtures.keys import lead_key_for
from tests.fixtures.stack import CONFIG, lead_body

SECRET = DEV_SECRETS["web"]


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.fixture
def client(bus: InMemoryBus, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(config=CONFIG)
    app = create_app(
        settings,
        IntakeSettings(max_body_bytes=4096, spool_dir=tmp_path),
        publisher=bus,
        authenticator=authenticator(),
    )
    with TestClient(app) as client:
        yield client


def signed(
    body: bytes,
    *,
    secret: str = SECRET,
    msg_id: str = "msg_1",
    timestamp: int | None = None,
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def post(client: TestClient, body: Any, source: str = "web", **kwargs: Any) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(f"/v1/webhooks/{source}", content=raw, headers=signed(raw, **kwargs))


def published(bus: InMemoryBus) -> list[Envelope]:
    return [Envelope.from_bytes(r.value) for records in bus.topics.values() for r in records]


def test_a_signed_lead_is_published_and_answered_202(client: TestClient, bus: InMemoryBus) -> None:
    response = post(client, lead_body(" Ana.Lopez@Example.COM ", phone="+1 415 555 0132"))

    assert response.status_code == 202
    key = lead_key_for("ana.lopez@example.com")
    assert response.json()["lead_key"] == key
    [record] = bus.topics["leads.received"]
    assert record.key == key.encode()
    event = Envelope.from_bytes(record.value)
    assert event.id == response.json()["event_id"]
    assert isinstance(event.data, LeadReceived)
    assert event.data.lead.email == "ana.lopez@example.com"
    assert event.data.lead.phone == "+14155550132"
    assert event.data.activity == "demo_request"
    assert event.data.delivery_id == "msg_1"


def test_a_redelivery_gets_the_same_answer_and_the_same_event_id(
    client: TestClient, bus: InMemoryBus
) -> None:
    first = post(client, lead_body("again@example.com"), msg_id="msg_same")
    second = post(client, lead_body("again@example.com"), msg_id="msg_same")
    third = post(client, lead_body("again@example.com"), msg_id="msg_other")

    assert first.json() == second.json()
    assert third.json()["event_id"] != first.json()["event_id"]
    assert len({e.id for e in published(bus)}) == 2


def test_a_crm_activity_is_published_on_the_activity_topic(
    client: TestClient, bus: InMemoryBus
) -> None:
    body = {
        "event": "rejected",
        "email": "ana@example.com",
        "occurred_at": "2026-11-26T10:00:00Z",
        "reason": "no budget",
    }
    raw = orjson.dumps(body)
    headers = signed(raw, secret=DEV_SECRETS["crm"])
    response = client.post("/v1/webhooks/crm", content=raw, headers=headers)

    assert response.status_code == 202, response.text
    [event] = published(bus)
    assert event.type == "lead.rejected"
    assert isinstance(event.data, LeadActivity)
    assert event.data.reason == "no budget"
    assert event.subject == lead_key_for("ana@example.com")
    assert event.data.identifiers == [lead_key_for("ana@example.com")]


def test_an_activity_names_its_lead_by_every_key_it_was_given(
    client: TestClient, bus: InMemoryBus
) -> None:
    body = {
        "event": "contacted",
        "email": " Ana@Example.com ",
        "phone": "+1 (613) 555-0101",
        "occurred_at": "2026-11-26T10:00:00Z",
    }
    raw = orjson.dumps(body)
    response = client.post(
        "/v1/webhooks/crm", content=raw, headers=signed(raw, secret=DEV_SECRETS["crm"])
    )

    assert response.status_code == 202, response.text
    [event] = published(bus)
    assert isinstance(event.data, LeadActivity)
    # Keyed by the email, as before; the phone's key travels along for the consumers, derived
    # from the normalized phone exactly as a lead received by that phone is keyed.
    assert event.subject == event.data.lead_key == lead_key_for("ana@example.com")
    assert event.data.identifiers == [lead_key_for("ana@example.com"), lead_key_for("+16135550101")]


def test_rotated_secrets_are_all_accepted(
    bus: InMemoryBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = "whsec_b2xkLXNlY3JldC0wMDAwMDAwMDAwMDA=", "whsec_bmV3LXNlY3JldC0wMDAwMDAwMDAwMDA="
    monkeypatch.setenv("LEADFLOW_SOURCE_WEB_SECRET", f"{new}\n{old}")  # one a line
    # Secrets are read when the intake starts, so the rotation is a restart with both.
    app = create_app(Settings(config=CONFIG), IntakeSettings(spool_dir=tmp_path), publisher=bus)

    with TestClient(app) as client:
        assert post(client, lead_body("a@example.com"), secret=old).status_code == 202
        assert post(client, lead_body("b@example.com"), secret=new, msg_id="m2").status_code == 202
        assert post(client, lead_body("c@example.com"), msg_id="m3").status_code == 401
    assert len(published(bus)) == 2


def refusal(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"secret": "whsec_d3Jvbmctc2VjcmV0LTAwMDAwMDAwMDAwMA=="}, "No signature matches"),
        ({"timestamp": int(time.time()) - 3600}, "too old"),
        ({"timestamp": int(time.time()) + 3600}, "in the future"),
    ],
)
def test_bad_signatures_and_timestamps_are_401(
    client: TestClient, bus: InMemoryBus, kwargs: dict[str, Any], says: str
) -> None:
    body = refusal(post(client, lead_body("x@example.com"), **kwargs), 401)
    assert says in body["detail"]
    assert published(bus) == []


def test_missing_signature_headers_are_named(client: TestClient, bus: InMemoryBus) -> None:
    response = client.post("/v1/webhooks/web", json=lead_body("x@example.com"))
    body = refusal(response, 401)
    assert "webhook-id" in body["detail"]
    assert "webhook-signature" in body["detail"]
    assert published(bus) == []


def test_unknown_source_is_404(client: TestClient, bus: InMemoryBus) -> None:
    body = refusal(post(client, lead_body("x@example.com"), source="nowhere"), 404)
    assert "nowhere" in body["detail"]
    assert published(bus) == []


def test_a_body_over_the_limit_is_413_even_without_content_length(
    client: TestClient, bus: InMemoryBus
) -> None:
    big = lead_body("x@example.com", custom={"notes": "x" * 5000})
    refusal(post(client, big), 413)

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    streamed = client.post("/v1/webhooks/web", content=chunks(), headers=signed(b""))
    refusal(streamed, 413)
    assert published(bus) == []


def test_a_body_that_is_not_json_is_415(client: TestClient, bus: InMemoryBus) -> None:
    raw = b"email=x@example.com"
    headers = {**signed(raw), "content-type": "application/x-www-form-urlencoded"}
    refusal(client.post("/v1/webhooks/web", content=raw, headers=headers), 415)
    assert published(bus) == []


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"event": "lead", "lead": {"first_name": "Ann"}}, "lead", "email or a phone"),
        ({"event": "lead", "lead": {"email": "not-an-email"}}, "lead", "email"),
        ({"event": "lead", "lead": {"phone": "12"}}, "lead", "phone"),
        # Alone, a phone must be a valid number: it is the lead's identity.
        ({"event": "lead", "lead": {"phone": "+1415555"}}, "lead.phone", "is not a valid phone"),
        # With an email, the phone must still be a phone number.
        (
            {"event": "lead", "lead": {"email": "a@example.com", "phone": "n/a"}},
            "lead.phone",
            "is not a phone number",
        ),
        (
            {"event": "lead", "lead": {"email": "a@example.com", "company": {"size": -3}}},
            "lead.company.size",
            "greater than or equal to 0",
        ),
        ({"event": "lead", "lead": {"email": "a@example.com", "shoe": 42}}, "lead.shoe", "Extra"),
        ({"event": "teleported"}, "(body)", "event"),
        (
            {
                "event": "rejected",
                "lead_key": "lk_" + "0" * 24,
                "occurred_at": "2026-11-26T10:00:00Z",
            },
            "(body)",
            "reason",
        ),
        (
            {"event": "contacted", "email": "a@example.com", "occurred_at": "2026-11-26T10:00:00"},
            "occurred_at",
            "timezone",
        ),
    ],
)
def test_invalid_bodies_are_422_with_field_errors(
    client: TestClient, bus: InMemoryBus, body: dict[str, Any], field: str, says: str
) -> None:
    problem = refusal(post(client, body), 422)
    assert any(
        e["field"].startswith(field) and says.lower() in e["message"].lower()
        for e in problem["errors"]
    ), problem["errors"]
    assert published(bus) == []


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        (b'{"custom": {"score": Infinity}}', "lead.custom.score", "custom.score is not a finite"),
        (b'{"custom": {"ids": [1, 1e999]}}', "lead.custom.ids.1", "custom.ids.1 is not a finite"),
        (
            b'{"custom": {"id": 123456789012345678901234567890}}',
            "lead.custom.id",
            "beyond 64 bits",
        ),
        (b'{"company": {"size": 123456789012345678901234567890}}', "lead.company.size", "less"),
        (b'{"call_duration_s": 99999999999999999999}', "lead.call_duration_s", "less"),
    ],
)
def test_numbers_an_event_cannot_carry_are_422(
    client: TestClient, bus: InMemoryBus, raw: bytes, field: str, says: str
) -> None:
    # Before: an infinite number became null in the event, a huge integer was a 500.
    lead = b'{"email": "a@example.com", ' + raw[1:]
    body = b'{"event": "lead", "lead": ' + lead + b"}"
    problem = refusal(post(client, body), 422)

    assert any(e["field"] == field and says in e["message"] for e in problem["errors"]), problem
    assert published(bus) == []


def test_a_won_deal_of_an_infinite_amount_is_422(client: TestClient, bus: InMemoryBus) -> None:
    body = (
        b'{"event": "won", "email": "a@example.com", "occurred_at": "2026-11-26T10:00:00Z",'
        b' "amount": 1e999}'
    )
    problem = refusal(post(client, body), 422)
    assert problem["errors"][0]["field"] == "amount"
    assert published(bus) == []


def test_a_lead_with_an_email_keeps_a_mistyped_phone(client: TestClient, bus: InMemoryBus) -> None:
    # Refusing the lead would lose it for a typo; scoring marks the phone invalid instead.
    response = post(client, lead_body("ana@example.com", phone="+1 415 555"))

    assert response.status_code == 202
    [event] = published(bus)
    assert isinstance(event.data, LeadReceived)
    assert event.data.lead.phone == "+1415555"
    assert event.data.lead_key == lead_key_for("ana@example.com")


def test_a_bug_is_a_500_problem_and_nothing_is_published(
    client: TestClient,
    bus: InMemoryBus,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in an adapter")

    def failures() -> float:
        return (
            REGISTRY.get_sample_value(
                "leadflow_intake_webhooks_total", {"source": "web", "outcome": "internal_error"}
            )
            or 0.0
        )

    before = failures()
    monkeypatch.setattr(StandardAdapter, "parse", broken)
    problem = refusal(post(client, lead_body("ana@example.com")), 500)

    assert "retry" in problem["detail"].lower()
    assert published(bus) == []
    assert any(r.exc_info and "a bug in an adapter" in str(r.exc_info[1]) for r in caplog.records)
    assert failures() == before + 1


def test_malformed_json_is_422(client: TestClient, bus: InMemoryBus) -> None:
    refusal(post(client, b"{not json"), 422)
    assert published(bus) == []


def test_rejections_are_counted_by_source_and_reason(client: TestClient) -> None:
    post(client, lead_body("x@example.com"), secret="whsec_d3JvbmctMDAwMDAwMDAwMDAwMDAwMDA=")
    metrics = client.get("/metrics", headers=AUTH).text
    assert 'leadflow_intake_webhooks_total{outcome="bad_signature",source="web"}' in metrics
