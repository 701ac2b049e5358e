"""The intake's limits over HTTP: per person (lead key) and per failing client address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from leadflow.bus.memory import InMemoryBus
from leadflow.settings import DEV_SECRETS
from tests.fixtures import senders
from tests.fixtures.intake import BASE_URL, intake_client, published, refusal, send
from tests.fixtures.keys import lead_key_for
from tests.fixtures.stack import lead_body

HUBSPOT_URL = f"{BASE_URL}/v1/webhooks/hubspot"
FORGED = "whsec_Zm9yZ2VkLXNlY3JldC0wMDAwMDAwMDAwMDA="


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.fixture
def client(bus: InMemoryBus, tmp_path: Path) -> Iterator[TestClient]:
    with intake_client(tmp_path / "spool", bus, identity_burst=3, auth_failures_burst=3) as client:
        yield client


def refusals(source: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "leadflow_intake_webhooks_total", {"source": source, "outcome": reason}
    )
    return value or 0.0


def test_a_flood_for_one_person_is_refused_past_its_budget(
    client: TestClient, bus: InMemoryBus
) -> None:
    before = refusals("web", "identity_rate_limited")
    answers = [
        send(client, "web", senders.standard(lead_body("Spam.Me@Example.com"))) for _ in range(3)
    ]
    # The same person however the address is written: one lead key.
    over = send(client, "web", senders.standard(lead_body("spam.me@example.COM ")))

    assert [a.status_code for a in answers] == [202, 202, 202]
    problem = refusal(over, 429)
    assert int(over.headers["retry-after"]) >= 1
    assert lead_key_for("spam.me@example.com") in problem["detail"]
    assert "spam.me" not in problem["detail"]  # no email in answers
    assert len(published(bus)) == 3
    assert refusals("web", "identity_rate_limited") == before + 1
    # Other people are not held up by it, from any source.
    assert send(client, "web", senders.standard(lead_body("other@example.com"))).status_code == 202
    marketo = senders.marketo(senders.marketo_lead("spam.me@example.com"))
    assert refusal(send(client, "marketo", marketo), 429)


def test_a_batch_is_refused_whole_when_one_of_its_people_is_over_budget(
    client: TestClient, bus: InMemoryBus
) -> None:
    for _ in range(3):
        send(client, "web", senders.standard(lead_body("busy@example.com")))
    events = [
        {
            "eventId": 700 + i,
            "subscriptionType": "contact.propertyChange",
            "propertyName": "email",
            "propertyValue": email,
            "objectId": 800 + i,
            "occurredAt": 1764460800000,
        }
        for i, email in enumerate(["calm@example.com", "busy@example.com"])
    ]
    problem = refusal(send(client, "hubspot", senders.hubspot(events, HUBSPOT_URL)), 429)
    assert lead_key_for("busy@example.com") in problem["detail"]
    assert lead_key_for("calm@example.com") not in problem["detail"]
    assert len(published(bus)) == 3
    # Nothing of the refused batch was charged: the calm person still has a full budget.
    for _ in range(3):
        response = send(client, "web", senders.standard(lead_body("calm@example.com")))
        assert response.status_code == 202


def test_crm_outcomes_are_not_counted_against_the_person(
    client: TestClient, bus: InMemoryBus
) -> None:
    for event in ("contacted", "accepted", "converted", "contacted", "accepted"):
        body = {"event": event, "email": "ana@example.com", "occurred_at": "2026-11-26T10:00:00Z"}
        signed = senders.standard(body, secret=DEV_SECRETS["crm"])
        assert send(client, "crm", signed).status_code == 202


def test_repeated_bad_signatures_from_one_address_become_429(
    client: TestClient, bus: InMemoryBus
) -> None:
    before = refusals("web", "auth_rate_limited")
    forged = [
        send(client, "web", senders.standard(lead_body("x@example.com"), secret=FORGED))
        for _ in range(3)
    ]
    over = send(client, "web", senders.standard(lead_body("x@example.com"), secret=FORGED))

    assert [f.status_code for f in forged] == [401, 401, 401]
    problem = refusal(over, 429)
    assert int(over.headers["retry-after"]) >= 1
    assert "failed authentication" in problem["detail"]
    assert refusals("web", "auth_rate_limited") == before + 1
    # A sender that signs correctly from the same address (a NAT, a proxy) still gets through.
    assert send(client, "web", senders.standard(lead_body("ok@example.com"))).status_code == 202
    assert len(published(bus)) == 1


def test_guessing_source_names_counts_against_the_same_budget(
    client: TestClient, bus: InMemoryBus
) -> None:
    before = refusals("unknown", "auth_rate_limited")
    guesses = [
        client.post(f"/v1/webhooks/{name}", content=b"{}", headers={"content-type": ctype})
        for name, ctype in (
            ("salesforce", "application/json"),
            ("pardot", "application/x-www-form-urlencoded"),
            ("zapier", "text/plain"),  # an unknown source is 404 whatever the content type
        )
    ]
    assert [g.status_code for g in guesses] == [404, 404, 404]
    for guess in guesses:
        refusal(guess, 404)
    # Past the budget, known and unknown names answer alike: nothing is learnt.
    unknown = client.post("/v1/webhooks/segment", content=b"{}")
    known = client.post("/v1/webhooks/marketo", content=b"{}")
    assert refusal(unknown, 429)["detail"] == refusal(known, 429)["detail"]
    assert refusals("unknown", "auth_rate_limited") == before + 1


def test_an_unauthenticated_wrong_content_type_tells_nothing(client: TestClient) -> None:
    # A known source without credentials is 401 whatever its kind takes.
    form = {"content-type": "application/x-www-form-urlencoded"}
    for source in ("web", "ivr", "marketo"):
        answer = client.post(f"/v1/webhooks/{source}", content=b"a=b", headers=form)
        assert refusal(answer, 401)
        assert "x-www-form-urlencoded" not in answer.text


def test_limits_can_be_turned_off(bus: InMemoryBus, tmp_path: Path) -> None:
    with intake_client(
        tmp_path / "spool", bus, identity_per_minute=0, auth_failures_per_minute=0
    ) as client:
        for _ in range(40):
            response = send(client, "web", senders.standard(lead_body("same@example.com")))
            assert response.status_code == 202
            assert client.post("/v1/webhooks/nowhere", content=b"{}").status_code == 404
