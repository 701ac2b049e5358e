"""Fuzzing: schemathesis against the intake's OpenAPI document, hypothesis on each adapter.

Whatever arrives: no 5xx, no crash, an answer the OpenAPI document describes, and no
event published for a request that was not accepted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from leadflow.bus.memory import InMemoryBus
from leadflow.config import load_config
from leadflow.settings import DEV_SECRETS, Settings
from leadflow_intake.adapters import adapter_for
from leadflow_intake.adapters.base import (
    AuthenticationError,
    InvalidPayload,
    SourceContext,
    WebhookRequest,
)
from leadflow_intake.adapters.twilio import form_fields
from leadflow_intake.app import create_app
from tests.fixtures import senders
from tests.fixtures.intake import BASE_URL, intake_client
from tests.fixtures.keys import KEYS
from tests.fixtures.stack import CONFIG

SOURCES = load_config(CONFIG).sources
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(config=CONFIG)).openapi())
WEBHOOK = SCHEMA["/v1/webhooks/{source}"]["POST"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)
lead_like = st.fixed_dictionaries(
    {},
    optional={
        "email": st.sampled_from(["a@example.com", "bad", "", "x@y"]) | st.text(max_size=12),
        "phone": st.sampled_from(["+14155550100", "12", "", "+442079460958"]) | st.integers(),
        "firstName": json_values,
        "company": json_values,
        "numberOfEmployees": st.sampled_from(["10", "lots", -1, 5000]) | json_values,
        "customer_phone_number": st.sampled_from(["+14155550101", "nope"]) | json_values,
        "resource_id": json_values,
        "properties": json_values,
        "activity": json_values,
        "event": st.sampled_from(["lead", "won", "rejected", "x"]),
        "lead": json_values,
    },
)


@pytest.fixture(scope="module")
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.fixture(scope="module")
def client(bus: InMemoryBus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # Fuzzed requests mostly fail authentication: without room for that, nearly all would
    # be 429s from the per-address limit, and the paths behind it would go unexercised.
    with intake_client(
        tmp_path_factory.mktemp("spool"), bus, auth_failures_burst=1_000_000
    ) as client:
        yield client


def published_count(bus: InMemoryBus) -> int:
    return sum(len(records) for records in bus.topics.values())


def body_of(kwargs: dict[str, Any]) -> bytes:
    """The raw body schemathesis meant to send."""
    if "json" in kwargs:
        return json.dumps(kwargs.pop("json")).encode()
    data = kwargs.pop("data", None)
    if isinstance(data, dict):
        return urlencode(data, doseq=True).encode()
    if isinstance(data, str):
        return data.encode()
    return data if isinstance(data, bytes) else b""


def signed_for(source: str, raw: bytes, url: str, media_type: str) -> dict[str, str]:
    """Headers that authenticate `raw` for `source`, as its sender would sign it."""
    kind = SOURCES[source].kind
    if kind == "standard":
        headers = senders.standard(raw, secret=DEV_SECRETS[source]).headers
    elif kind == "hubspot":
        headers = senders.hubspot(raw, url).headers
    elif kind == "callrail":
        headers = senders.callrail(raw).headers
    elif kind == "marketo":
        headers = senders.marketo(raw).headers
    else:
        fields = dict(form_fields(raw)) if media_type.endswith("urlencoded") else {}
        headers = senders.twilio(fields, url).headers if fields else {"x-twilio-signature": "x"}
    return {**headers, "content-type": media_type}


@given(case=WEBHOOK.as_strategy())
@FUZZ
def test_any_request_gets_a_documented_answer_and_nothing_unaccepted_is_published(
    client: TestClient, bus: InMemoryBus, case: Any
) -> None:
    before = published_count(bus)
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    response = client.request(
        kwargs["method"], kwargs["url"], content=body_of(kwargs), headers=kwargs.get("headers")
    )
    case.validate_response(response, checks=CHECKS)
    assert response.status_code != 202
    assert published_count(bus) == before


@given(case=WEBHOOK.as_strategy(), source=st.sampled_from(sorted(SOURCES)))
@FUZZ
def test_signed_fuzz_bodies_are_accepted_or_refused_never_crash(
    client: TestClient, bus: InMemoryBus, case: Any, source: str
) -> None:
    case.path_parameters = {"source": source}
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    raw = body_of(kwargs)
    media_type = (case.media_type or "application/json").split(";")[0]
    url = f"{BASE_URL}/v1/webhooks/{source}"
    before = published_count(bus)
    response = client.post(
        f"/v1/webhooks/{source}", content=raw, headers=signed_for(source, raw, url, media_type)
    )
    case.validate_response(response, checks=CHECKS)
    if response.status_code != 202:
        assert published_count(bus) == before
    else:
        assert published_count(bus) == before + len(response.json()["events"])


@given(source=st.sampled_from(sorted(SOURCES)), body=lead_like | json_values)
@FUZZ
def test_adapters_parse_any_json_into_events_or_field_errors(source: str, body: Any) -> None:
    config = SOURCES[source]
    adapter = adapter_for(config.kind)
    raw = json.dumps(body).encode()
    if config.kind == "twilio":
        raw = urlencode(
            {k: str(v) for k, v in body.items()} if isinstance(body, dict) else {}
        ).encode()
    request = WebhookRequest("POST", f"{BASE_URL}/v1/webhooks/{source}", {}, raw)
    context = SourceContext(source, config, [DEV_SECRETS[source]], KEYS)
    refused: InvalidPayload | None = None
    try:
        parsed = adapter.parse(request, context, delivery_id="d-1", now=datetime.now(UTC))
    except InvalidPayload as exc:
        refused = exc
    if refused is not None:
        assert refused.detail
        assert all(set(e) == {"field", "message"} for e in refused.errors)
        return
    for event in parsed.events:
        assert event.subject.startswith("lk_")
        envelope = event.envelope()  # the JSON is a valid event of its type and key
        assert (envelope.id, envelope.type, envelope.subject) == (
            event.id,
            event.type,
            event.subject,
        )


@given(
    source=st.sampled_from(sorted(SOURCES)),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "x-hubspot-signature-v3",
                "x-hubspot-request-timestamp",
                "x-twilio-signature",
                "x-twilio-webhooks-signature-settings",
                "signature",
                "x-leadflow-secret",
            ]
        ),
        st.text(max_size=40),
    ),
    body=st.binary(max_size=200),
)
@FUZZ
def test_adapters_refuse_any_unsigned_request_cleanly(
    source: str, headers: dict[str, str], body: bytes
) -> None:
    config = SOURCES[source]
    request = WebhookRequest("POST", f"{BASE_URL}/v1/webhooks/{source}", headers, body)
    context = SourceContext(source, config, [DEV_SECRETS[source]], KEYS)
    with pytest.raises((AuthenticationError, InvalidPayload)):
        adapter_for(config.kind).authenticate(
            request, context, now=datetime.now(UTC).timestamp(), tolerance_s=300
        )
