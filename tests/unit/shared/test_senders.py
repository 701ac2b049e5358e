"""Requests signed as each kind's sender signs them: checked by the senders' own libraries,
and `leadflow webhook send` posting every example through the source it represents."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from hubspot.utils.signature import Signature
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import RequestValidator
from typer.testing import CliRunner

from leadflow.bus.memory import InMemoryBus
from leadflow.config import Source, load_config
from leadflow.events import LeadReceived
from leadflow.senders import RequestBodyError, signed_request
from leadflow.settings import DEV_SECRETS
from leadflow_cli.app import app
from tests.fixtures.intake import BASE_URL, intake_client, published

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "example.yaml"
SOURCES = load_config(EXAMPLE).sources
CALL = orjson.dumps({"CallSid": "CA1", "From": "+16135550188", "budget": 3, "urgent": True})
# Each example file and the source its sender posts it through (the README tour's order).
EXAMPLES = {
    "lead.json": "web",
    "watch.json": "web",
    "nurture.json": "web",
    "disqualified.json": "web",
    "purchased.json": "import",
    "call.json": "ivr",
    "account-lead.json": "web",
    "small-lead.json": "web",
    "callrail-call.json": "callrail",
    "hubspot-contact.json": "hubspot",
}
# What `leadflow simulate` reads rather than a sender posts.
SIMULATION_INPUTS = {"history.jsonl", "candidate.yaml"}


def sign(source: str, body: bytes, now: float | None = None, **options: Any) -> Any:
    """The request `source`'s sender would post, signed at `now` (default: this instant;
    the senders' libraries check timestamps against their own clock)."""
    return signed_request(
        source,
        SOURCES[source],
        DEV_SECRETS[source],
        "http://intake.test/",
        body,
        now=time.time() if now is None else now,
        **options,
    )


def test_standard_is_signed_as_standardwebhooks_verifies() -> None:
    now = time.time()
    request = sign("web", b'{"event": "lead"}', now, delivery_id="msg_1")

    assert request.url == "http://intake.test/v1/webhooks/web"
    assert request.headers["webhook-id"] == "msg_1"
    verified = Webhook(DEV_SECRETS["web"]).verify(
        request.body.decode(), request.headers | {"webhook-timestamp": str(int(now))}
    )
    assert verified == {"event": "lead"}


def test_twilio_posts_the_fields_form_encoded_as_twilio_signs_them() -> None:
    request = sign("ivr", CALL, query="question=budget")

    fields = dict(parse_qsl(request.body.decode()))
    assert fields == {"CallSid": "CA1", "From": "+16135550188", "budget": "3", "urgent": "true"}
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.url == "http://intake.test/v1/webhooks/ivr?question=budget"
    assert RequestValidator(DEV_SECRETS["ivr"]).validate(
        request.url, fields, request.headers["x-twilio-signature"]
    )
    assert not RequestValidator("another-token").validate(
        request.url, fields, request.headers["x-twilio-signature"]
    )


def test_twilio_signs_the_public_url_the_sender_was_given() -> None:
    source = Source(kind="twilio", public_base_url="https://leads.example.com")
    request = signed_request("ivr", source, "token", "http://127.0.0.1:8000", CALL, now=time.time())

    fields = dict(parse_qsl(request.body.decode()))
    assert request.url == "http://127.0.0.1:8000/v1/webhooks/ivr"
    signature = request.headers["x-twilio-signature"]
    assert RequestValidator("token").validate(
        "https://leads.example.com/v1/webhooks/ivr", fields, signature
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"CallSid=CA1&From=%2B1", "write them as one JSON object"),
        (b'["CA1"]', "one JSON object of names and values"),
        (b'{"From": {"number": "+1"}}', "field 'From' must be text or a number, not dict"),
        (b'{"From": null}', "field 'From' must be text or a number, not NoneType"),
    ],
)
def test_twilio_refuses_what_is_not_form_fields(body: bytes, says: str) -> None:
    with pytest.raises(RequestBodyError, match=says):
        sign("ivr", body)


def test_hubspot_is_signed_as_the_hubspot_client_verifies() -> None:
    body = b'{"email": "dana@initech.example"}'
    now = time.time()
    request = sign("hubspot", body, now)

    timestamp = request.headers["x-hubspot-request-timestamp"]
    assert timestamp == str(int(now * 1000))
    assert Signature.is_valid(
        signature=request.headers["x-hubspot-signature-v3"],
        client_secret=DEV_SECRETS["hubspot"],
        request_body=body.decode(),
        http_uri=request.url,
        http_method="POST",
        signature_version="v3",
        timestamp=timestamp,
    )


def test_callrail_and_marketo_as_documented() -> None:
    body = b'{"resource_id": "CAL1"}'
    callrail = sign("callrail", body)
    marketo = sign("marketo", body)

    digest = hmac.new(DEV_SECRETS["callrail"].encode(), body, hashlib.sha1).digest()
    assert callrail.headers["signature"] == base64.b64encode(digest).decode()
    assert marketo.headers["x-leadflow-secret"] == DEV_SECRETS["marketo"]
    assert callrail.body == marketo.body == body


def test_every_example_is_in_the_tour() -> None:
    files = {p.name for p in (ROOT / "examples").iterdir()}
    assert files == set(EXAMPLES) | SIMULATION_INPUTS


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.fixture
def intake(
    bus: InMemoryBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The intake on the example configuration, where `leadflow webhook send` posts."""
    monkeypatch.setenv("LEADFLOW_CONFIG", str(EXAMPLE))
    with intake_client(tmp_path / "spool", bus, config=EXAMPLE) as client:

        def post(url: str, **kwargs: Any) -> httpx.Response:
            kwargs.pop("timeout", None)
            response: httpx.Response = client.post(url, **kwargs)
            return response

        monkeypatch.setattr("leadflow_cli.app.httpx.post", post)
        yield client


def send(*args: str) -> Any:
    return CliRunner().invoke(app, ["webhook", "send", *args, "--url", BASE_URL])


@pytest.mark.parametrize(("name", "source"), EXAMPLES.items())
def test_webhook_send_posts_each_example_through_its_source(
    intake: TestClient, bus: InMemoryBus, name: str, source: str
) -> None:
    result = send(str(ROOT / "examples" / name), "--source", source)

    assert result.exit_code == 0, result.output
    assert result.output.startswith("202 ")
    [event] = published(bus)
    assert isinstance(event.data, LeadReceived)
    assert (event.data.source, event.data.source_kind) == (source, SOURCES[source].kind)


def test_webhook_send_gives_the_ivr_the_answers_its_questions_map(
    intake: TestClient, bus: InMemoryBus
) -> None:
    result = send(str(ROOT / "examples" / "call.json"), "--source", "ivr")

    assert result.exit_code == 0, result.output
    [event] = published(bus)
    assert isinstance(event.data, LeadReceived)
    assert event.data.activity == "ivr_call"
    assert event.data.lead.answers == {
        "budget": "over_50k",
        "authority": "decision_maker",
        "need": "urgent",
        "timeframe": "this_quarter",
    }


def test_webhook_send_through_the_wrong_source_is_refused(
    intake: TestClient, bus: InMemoryBus
) -> None:
    # A Twilio call posted as a web form is not a lead; a form is not a Twilio call.
    as_web = send(str(ROOT / "examples" / "call.json"), "--source", "web")
    as_ivr = send(str(ROOT / "examples" / "lead.json"), "--source", "ivr")
    unknown = send(str(ROOT / "examples" / "lead.json"), "--source", "fax")

    assert (as_web.exit_code, as_web.output[:4]) == (1, "422 ")
    assert as_ivr.exit_code == 2
    assert "a twilio source takes form fields" in as_ivr.output
    assert unknown.exit_code == 2
    assert "no source named 'fax'" in unknown.output
    assert published(bus) == []
