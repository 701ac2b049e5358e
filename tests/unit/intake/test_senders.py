"""Each source kind over HTTP on the in-memory bus, signed by the senders' own libraries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from leadflow.bus.memory import InMemoryBus
from leadflow.events import LeadActivity, LeadReceived, derived_event_id
from leadflow.settings import DEV_SECRETS
from leadflow_intake.adapters.base import content_delivery_id
from tests.fixtures import senders
from tests.fixtures.auth import AUTH
from tests.fixtures.intake import BASE_URL, intake_client, published, refusal, send
from tests.fixtures.keys import lead_key_for

IVR_URL = f"{BASE_URL}/v1/webhooks/ivr"
HUBSPOT_URL = f"{BASE_URL}/v1/webhooks/hubspot"


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.fixture
def client(bus: InMemoryBus, tmp_path: Path) -> Iterator[TestClient]:
    with intake_client(tmp_path / "spool", bus) as client:
        yield client


def only_lead(bus: InMemoryBus) -> LeadReceived:
    [event] = published(bus)
    assert isinstance(event.data, LeadReceived)
    return event.data


# --- standard -------------------------------------------------------------------------


def test_standard_signed_by_the_standardwebhooks_library(
    client: TestClient, bus: InMemoryBus
) -> None:
    body = {"event": "lead", "activity": "webinar", "lead": {"email": "Kim@Example.com"}}
    response = send(client, "web", senders.standard(body, msg_id="msg_std_1"))

    assert response.status_code == 202, response.text
    assert response.json()["event_id"] == derived_event_id("web", "msg_std_1")
    lead = only_lead(bus)
    assert (lead.source_kind, lead.activity, lead.lead.email) == (
        "standard",
        "webinar",
        "kim@example.com",
    )


@pytest.mark.parametrize(
    ("event", "extra"),
    [
        ("contacted", {}),
        ("accepted", {}),
        ("rejected", {"reason": "no budget this year"}),
        ("converted", {}),
        ("won", {"amount": 48000, "currency": "EUR"}),
        ("lost", {"amount": 12000, "currency": "USD", "reason": "went with a competitor"}),
    ],
)
def test_crm_activities_are_linked_to_their_lead(
    client: TestClient, bus: InMemoryBus, event: str, extra: dict[str, object]
) -> None:
    body = {"event": event, "email": "kim@example.com", "occurred_at": "2026-11-26T10:00:00Z"}
    signed = senders.standard({**body, **extra}, secret=DEV_SECRETS["crm"])
    response = send(client, "crm", signed)

    assert response.status_code == 202, response.text
    [published_event] = published(bus)
    assert published_event.type == f"lead.{event}"
    assert isinstance(published_event.data, LeadActivity)
    assert published_event.subject == lead_key_for("kim@example.com")
    assert published_event.data.amount == extra.get("amount")
    assert published_event.data.reason == extra.get("reason")


def test_won_without_an_amount_is_422(client: TestClient, bus: InMemoryBus) -> None:
    body = {"event": "won", "lead_key": "lk_" + "1" * 24, "occurred_at": "2026-11-26T10:00:00Z"}
    problem = refusal(send(client, "crm", senders.standard(body, secret=DEV_SECRETS["crm"])), 422)
    assert any("amount" in e["message"] for e in problem["errors"])
    assert published(bus) == []


# --- hubspot --------------------------------------------------------------------------


def test_hubspot_workflow_record_signed_by_hubspot_api_client(
    client: TestClient, bus: InMemoryBus
) -> None:
    record = {
        "hs_object_id": 901,
        "properties": {
            "email": {"value": "lee@initech.example"},
            "firstname": {"value": "Lee"},
            "jobtitle": {"value": "Head of Ops"},
            "company": {"value": "Initech"},
            "numemployees": {"value": "1200"},
            "country": {"value": "US"},
        },
    }
    signed = senders.hubspot(record, HUBSPOT_URL)
    first = send(client, "hubspot", signed)
    again = send(client, "hubspot", senders.hubspot(record, HUBSPOT_URL))

    assert first.status_code == 202, first.text
    assert first.json() == again.json()
    assert first.json()["event_id"] == derived_event_id("hubspot", content_delivery_id(signed.body))
    lead = published(bus)[0].data
    assert isinstance(lead, LeadReceived)
    assert lead.lead.email == "lee@initech.example"
    assert lead.lead.company.size == 1200
    assert lead.lead.job_title == "Head of Ops"
    assert lead.lead.custom == {"hubspot_object_id": 901}


def test_hubspot_event_array_gives_one_event_per_identified_change(
    client: TestClient, bus: InMemoryBus
) -> None:
    events = [
        {
            "eventId": 1001,
            "subscriptionType": "contact.propertyChange",
            "objectId": 77,
            "propertyName": "email",
            "propertyValue": "ava@umbrella.example",
            "occurredAt": 1764150000000,
        },
        {"eventId": 1002, "subscriptionType": "contact.creation", "objectId": 78},
        {
            "eventId": 1003,
            "subscriptionType": "contact.propertyChange",
            "objectId": 79,
            "propertyName": "phone",
            "propertyValue": "+44 20 7946 0958",
        },
    ]
    response = send(client, "hubspot", senders.hubspot(events, HUBSPOT_URL))

    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["ignored"] == 1
    assert [e["event_id"] for e in answer["events"]] == [
        derived_event_id("hubspot", "event-1001"),
        derived_event_id("hubspot", "event-1003"),
    ]
    assert [e.subject for e in published(bus)] == [
        lead_key_for("ava@umbrella.example"),
        lead_key_for("+442079460958"),
    ]


def test_hubspot_signature_covers_the_url_behind_a_proxy(
    client: TestClient, bus: InMemoryBus
) -> None:
    public = "https://leads.example.com/v1/webhooks/hubspot"
    signed = senders.hubspot({"email": "proxy@example.com"}, public)

    direct = send(client, "hubspot", signed)
    forwarded = client.post(
        "/v1/webhooks/hubspot",
        content=signed.body,
        headers={
            **signed.headers,
            "x-forwarded-proto": "https",
            "x-forwarded-host": "leads.example.com",
        },
    )

    refusal(direct, 401)
    assert forwarded.status_code == 202, forwarded.text


@pytest.mark.parametrize(("offset_s", "says"), [(-3600, "too old"), (3600, "in the future")])
def test_hubspot_stale_or_future_timestamps_are_401(
    client: TestClient, bus: InMemoryBus, offset_s: int, says: str
) -> None:
    ts = int((time.time() + offset_s) * 1000)
    signed = senders.hubspot({"email": "old@example.com"}, HUBSPOT_URL, timestamp_ms=ts)
    assert says in refusal(send(client, "hubspot", signed), 401)["detail"]
    assert published(bus) == []


def test_hubspot_invalid_email_names_the_hubspot_property(
    client: TestClient, bus: InMemoryBus
) -> None:
    signed = senders.hubspot({"email": "not-an-email", "firstname": "X"}, HUBSPOT_URL)
    problem = refusal(send(client, "hubspot", signed), 422)
    assert problem["errors"][0]["field"] == "email"
    assert published(bus) == []


# --- twilio ---------------------------------------------------------------------------


def test_twilio_studio_call_with_every_answer(client: TestClient, bus: InMemoryBus) -> None:
    params = senders.ivr_call("CA100", budget="3", authority="1", need="1", timeframe="2")
    response = send(client, "ivr", senders.twilio(params, IVR_URL))

    assert response.status_code == 202, response.text
    assert response.json()["event_id"] == derived_event_id("ivr", "CA100:call")
    lead = only_lead(bus)
    assert lead.activity == "ivr_call"
    assert lead.lead.phone == "+14155550100"
    assert lead.lead.answers == {
        "budget": "over_50k",
        "authority": "decision_maker",
        "need": "urgent",
        "timeframe": "this_year",
    }


def test_twilio_gather_posts_one_answer_per_question(client: TestClient, bus: InMemoryBus) -> None:
    budget = senders.twilio(
        {**senders.ivr_call("CA200"), "Digits": "2"}, f"{IVR_URL}?question=budget"
    )
    need = senders.twilio(
        {**senders.ivr_call("CA200"), "SpeechResult": "Yes."}, f"{IVR_URL}?question=need"
    )
    first = send(client, "ivr", budget, query="question=budget")
    second = send(client, "ivr", need, query="question=need")
    retried = send(client, "ivr", budget, query="question=budget")

    assert first.status_code == second.status_code == 202
    assert retried.json() == first.json()
    assert first.json()["event_id"] == derived_event_id("ivr", "CA200:budget")
    answers = [e.data.lead.answers for e in published(bus) if isinstance(e.data, LeadReceived)]
    assert answers == [{"budget": "10k_to_50k"}, {"need": "urgent"}, {"budget": "10k_to_50k"}]


def test_twilio_question_not_configured_is_422(client: TestClient, bus: InMemoryBus) -> None:
    signed = senders.twilio(
        {**senders.ivr_call("CA300"), "Digits": "1"}, f"{IVR_URL}?question=shoe"
    )
    problem = refusal(send(client, "ivr", signed, query="question=shoe"), 422)
    assert problem["errors"][0]["field"] == "question"


def test_twilio_signature_over_another_url_is_401(client: TestClient, bus: InMemoryBus) -> None:
    signed = senders.twilio(senders.ivr_call("CA400"), "https://elsewhere.example/v1/webhooks/ivr")
    assert "X-Twilio-Signature".lower() in refusal(send(client, "ivr", signed), 401)["detail"]
    assert published(bus) == []


def test_twilio_tampered_parameter_is_401(client: TestClient, bus: InMemoryBus) -> None:
    signed = senders.twilio(senders.ivr_call("CA500", budget="1"), IVR_URL)
    tampered = senders.Signed(signed.body.replace(b"budget=1", b"budget=3"), signed.headers)
    refusal(send(client, "ivr", tampered), 401)
    assert published(bus) == []


def test_twilio_json_is_415_once_the_sender_is_authenticated(
    client: TestClient, bus: InMemoryBus
) -> None:
    # Unsigned, a wrong content type tells nothing about the source (not even its kind).
    unsigned = client.post("/v1/webhooks/ivr", json={"From": "+14155550100"})
    assert "x-twilio-signature" in refusal(unsigned, 401)["detail"]
    assert "form" not in unsigned.text
    # Signed with the account's token (a widget set to send JSON), the sender is told
    # what the source takes.
    signed = senders.twilio(senders.ivr_call("CA415"), IVR_URL)
    headers = {**signed.headers, "content-type": "application/json"}
    response = client.post("/v1/webhooks/ivr", content=signed.body, headers=headers)
    assert "application/x-www-form-urlencoded" in refusal(response, 415)["detail"]
    assert published(bus) == []


def test_twilio_token_rotation_accepts_both(
    tmp_path: Path, bus: InMemoryBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_SOURCE_IVR_SECRET", "new-token old-token")
    with intake_client(tmp_path / "spool", bus) as client:
        old = send(
            client, "ivr", senders.twilio(senders.ivr_call("CA1"), IVR_URL, token="old-token")
        )
        new = send(
            client, "ivr", senders.twilio(senders.ivr_call("CA2"), IVR_URL, token="new-token")
        )
        gone = send(client, "ivr", senders.twilio(senders.ivr_call("CA3"), IVR_URL))
    assert (old.status_code, new.status_code, gone.status_code) == (202, 202, 401)


# --- callrail -------------------------------------------------------------------------


def test_callrail_post_call(client: TestClient, bus: InMemoryBus) -> None:
    response = send(client, "callrail", senders.callrail(senders.callrail_call("CAL9")))

    assert response.status_code == 202, response.text
    assert response.json()["event_id"] == derived_event_id("callrail", "call-CAL9")
    lead = only_lead(bus)
    assert lead.activity == "phone_call"
    assert lead.lead.phone == "+14155550111"
    assert lead.lead.call_duration_s == 187
    assert lead.lead.utm == {"source": "google", "medium": "cpc", "campaign": "brand"}
    assert lead.lead.custom["recording_url"].endswith("/recording")
    # What the example's call scoring rules test on the touch.
    assert (lead.lead.custom["answered"], lead.lead.custom["first_call"]) == (True, True)


def test_callrail_bad_signature_is_401(client: TestClient, bus: InMemoryBus) -> None:
    signed = senders.callrail(senders.callrail_call("CAL10"), key="another-company-key")
    refusal(send(client, "callrail", signed), 401)
    assert published(bus) == []


def test_callrail_without_a_caller_is_422(client: TestClient, bus: InMemoryBus) -> None:
    call = {**senders.callrail_call("CAL11"), "customer_phone_number": None}
    problem = refusal(send(client, "callrail", senders.callrail(call)), 422)
    assert "customer_phone_number" in problem["errors"][0]["field"]


def test_callrail_caller_that_is_not_a_valid_number_is_422(
    client: TestClient, bus: InMemoryBus
) -> None:
    # The caller's number is the lead's only identity: it must be a valid one.
    call = {**senders.callrail_call("CAL12"), "customer_phone_number": "+1415555"}
    problem = refusal(send(client, "callrail", senders.callrail(call)), 422)
    assert problem["errors"][0]["field"] == "customer_phone_number"
    assert "not a valid phone" in problem["errors"][0]["message"]
    assert published(bus) == []


# --- marketo --------------------------------------------------------------------------


def test_marketo_lead_with_a_mistyped_phone_is_kept(client: TestClient, bus: InMemoryBus) -> None:
    body = senders.marketo_lead("jo@globex.example", phone="(415) 555-01")
    response = send(client, "marketo", senders.marketo(body))

    assert response.status_code == 202, response.text
    lead = published(bus)[0].data
    assert isinstance(lead, LeadReceived)
    assert lead.lead.phone == "+141555501"
    assert lead.lead.email == "jo@globex.example"


def test_marketo_phone_that_is_not_a_number_is_422(client: TestClient, bus: InMemoryBus) -> None:
    body = senders.marketo_lead("jo@globex.example", phone="ask reception")
    problem = refusal(send(client, "marketo", senders.marketo(body)), 422)
    assert problem["errors"][0]["field"] == "phone"
    assert published(bus) == []


def test_marketo_template_with_the_shared_secret(client: TestClient, bus: InMemoryBus) -> None:
    body = senders.marketo_lead("jo@globex.example")
    first = send(client, "marketo", senders.marketo(body))
    again = send(client, "marketo", senders.marketo(body))

    assert first.status_code == 202, first.text
    assert first.json() == again.json()
    lead = published(bus)[0].data
    assert isinstance(lead, LeadReceived)
    assert lead.activity == "content_download"
    assert lead.lead.company.size == 2500
    assert lead.lead.job_title == "Director of IT"
    assert lead.lead.phone is None
    assert lead.lead.utm == {"source": "linkedin"}


@pytest.mark.parametrize(
    ("headers", "says"),
    [({}, "missing header"), ({"x-leadflow-secret": "guess"}, "does not match")],
)
def test_marketo_missing_or_wrong_secret_is_401(
    client: TestClient, bus: InMemoryBus, headers: dict[str, str], says: str
) -> None:
    raw = orjson.dumps(senders.marketo_lead("jo@globex.example"))
    response = client.post(
        "/v1/webhooks/marketo", content=raw, headers={"content-type": "application/json", **headers}
    )
    assert says in refusal(response, 401)["detail"].lower()
    assert published(bus) == []


def test_marketo_type_errors_name_the_template_field(client: TestClient, bus: InMemoryBus) -> None:
    body = senders.marketo_lead("jo@globex.example", numberOfEmployees="lots")
    problem = refusal(send(client, "marketo", senders.marketo(body)), 422)
    assert problem["errors"][0]["field"] == "numberOfEmployees"
    assert published(bus) == []


def test_rate_limited_source_is_429_with_retry_after(tmp_path: Path, bus: InMemoryBus) -> None:
    config = tmp_path / "config.yaml"
    text = (Path(__file__).parents[2] / "fixtures" / "config.yaml").read_text()
    config.write_text(text.replace("{per_second: 20, burst: 100}", "{per_second: 0.01, burst: 2}"))
    with intake_client(tmp_path / "spool", bus, config=config) as client:
        answers = [
            send(client, "marketo", senders.marketo(senders.marketo_lead(f"r{i}@globex.example")))
            for i in range(3)
        ]
        forged = send(
            client, "marketo", senders.marketo(senders.marketo_lead("x@y.example"), secret="x")
        )
        metrics = client.get("/metrics", headers=AUTH).text
    assert [a.status_code for a in answers] == [202, 202, 429]
    problem = refusal(answers[2], 429)
    assert int(answers[2].headers["retry-after"]) >= 1
    assert "rate limit" in problem["detail"]
    assert forged.status_code == 401  # a forged request is refused before it costs a token
    assert len(published(bus)) == 2
    assert 'leadflow_intake_webhooks_total{outcome="rate_limited",source="marketo"} 1.0' in metrics


def test_twilio_public_base_url_is_the_url_checked(tmp_path: Path, bus: InMemoryBus) -> None:
    config = tmp_path / "config.yaml"
    text = (Path(__file__).parents[2] / "fixtures" / "config.yaml").read_text()
    config.write_text(
        text.replace(
            "  ivr:\n    kind: twilio\n",
            "  ivr:\n    kind: twilio\n    public_base_url: https://calls.example.com/lf\n",
        )
    )
    public = "https://calls.example.com/lf/v1/webhooks/ivr"
    with intake_client(tmp_path / "spool", bus, config=config) as client:
        as_public = send(client, "ivr", senders.twilio(senders.ivr_call("CApub"), public))
        as_received = send(client, "ivr", senders.twilio(senders.ivr_call("CApub2"), IVR_URL))
    assert as_public.status_code == 202, as_public.text
    refusal(as_received, 401)


def test_a_twilio_body_that_is_not_utf8_is_422_not_500(
    client: TestClient, bus: InMemoryBus
) -> None:
    signed = senders.twilio(senders.ivr_call("CA8"), IVR_URL)
    garbled = senders.Signed(signed.body + b"&Digits=\xff\xfe", signed.headers)
    problem = refusal(send(client, "ivr", garbled), 422)
    assert "UTF-8" in problem["detail"]
    assert published(bus) == []
