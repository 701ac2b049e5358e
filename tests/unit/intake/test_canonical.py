"""The `lead.received` event built from a sender's lead: exactly what the event models make."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from leadflow.events import Envelope, Lead, LeadActivity, LeadReceived, derived_event_id, new_event
from leadflow.keys import LeadKeys
from leadflow_intake.canonical import ActivityBody, LeadBody, LeadIn, activity_event, lead_event
from tests.fixtures.keys import KEYS, lead_key_for

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
BODY = (
    b'{"event": "lead", "activity": "demo_request", "lead": {"email": " Jane@BigCo.example ",'
    b' "phone": "+14155550123", "company": {"name": "Bigco", "size": 1500},'
    b' "utm": {"source": "ads"}, "custom": {"tags": ["a", 1, 2.5, null]}}}'
)


def modelled(lead: LeadIn, *, delivery_id: str, activity: str, now: datetime) -> Envelope:
    """The same event built the reference way: a LeadReceived in an Envelope."""
    received = LeadReceived(
        lead_key=lead_key_for(lead.identity()),
        source="web",
        source_kind="standard",
        delivery_id=delivery_id,
        activity=activity,
        received_at=now,
        lead=Lead.model_validate(lead.model_dump()),
    )
    return new_event(
        "lead.received",
        received,
        source="/leadflow/intake/web",
        time=now,
        event_id=derived_event_id("web", delivery_id),
    )


def test_the_event_carries_exactly_the_lead_fields_of_the_validated_lead() -> None:
    lead = LeadBody.model_validate_json(BODY).lead

    event = lead_event(
        lead,
        keys=KEYS,
        source="web",
        kind="standard",
        delivery_id="d-1",
        activity="demo_request",
        now=NOW,
    )
    envelope = event.envelope()

    assert isinstance(envelope.data, LeadReceived)
    assert type(envelope.data.lead) is Lead
    assert envelope.data.lead == Lead.model_validate(lead.model_dump())
    assert envelope.data.lead.email == "jane@bigco.example"
    assert (event.id, event.type, event.subject) == (envelope.id, envelope.type, envelope.subject)
    assert (
        event.value
        == modelled(lead, delivery_id="d-1", activity="demo_request", now=NOW).to_bytes()
    )


def test_an_event_time_without_a_zone_is_refused() -> None:
    lead = LeadBody.model_validate_json(BODY).lead
    with pytest.raises(ValueError, match="time zone"):
        lead_event(
            lead,
            keys=KEYS,
            source="web",
            kind="standard",
            delivery_id="d",
            activity="x",
            now=NOW.replace(tzinfo=None),
        )


text = st.text(max_size=12)
custom_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
leads = st.fixed_dictionaries(
    {"email": st.sampled_from(["ana@example.com", "Bo.Li@Contoso.example", "x+y@sub.a.example"])},
    optional={
        "phone": st.sampled_from(["+14155550123", "+1 415 555", "+442079460958"]),
        "first_name": text,
        "job_title": text,
        "company": st.fixed_dictionaries(
            {},
            optional={
                "name": text,
                "size": st.integers(0, 10**6),
                "domain": text,
                "industry": text,
            },
        ),
        "country": st.sampled_from(["US", "GB", "de"]),
        "utm": st.dictionaries(st.sampled_from(["source", "medium", "campaign"]), text),
        "answers": st.dictionaries(st.sampled_from(["budget", "need"]), text),
        "consent": st.booleans(),
        "call_duration_s": st.integers(0, 10**5),
        "list_source": st.sampled_from(["inbound", "purchased_list", "event", "partner"]),
        "custom": st.dictionaries(text, custom_values, max_size=4),
    },
)
times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
    ),
)


@given(
    data=leads,
    now=times,
    delivery_id=text,
    activity=st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_the_event_json_is_byte_for_byte_what_the_models_serialize(
    data: dict[str, Any], now: datetime, delivery_id: str, activity: str
) -> None:
    try:
        lead = LeadIn.model_validate(data)
    except ValidationError:
        return  # not a lead: never reaches lead_event
    event = lead_event(
        lead,
        keys=KEYS,
        source="web",
        kind="standard",
        delivery_id=delivery_id,
        activity=activity,
        now=now,
    )
    reference = modelled(lead, delivery_id=delivery_id, activity=activity, now=now)

    assert event.value == reference.to_bytes()
    assert event.envelope() == reference


def test_during_a_key_rotation_a_lead_gets_the_new_key_and_an_outcome_names_every_key() -> None:
    old, new = (
        "the-secret-before-the-rotation-0123456789",
        "the-secret-after-the-rotation-9876543210",
    )
    rotating = LeadKeys(new, [old])
    lead = LeadBody.model_validate_json(BODY).lead
    outcome = ActivityBody.model_validate(
        {"event": "contacted", "email": "jane@bigco.example", "occurred_at": NOW.isoformat()}
    )

    received = lead_event(
        lead, keys=rotating, source="web", kind="standard", delivery_id="d", activity="x", now=NOW
    )
    contacted = activity_event(outcome, keys=rotating, source="crm", delivery_id="c", now=NOW)

    assert received.subject == LeadKeys(new).key("jane@bigco.example")
    assert isinstance(contacted.data, LeadActivity)
    assert contacted.data.lead_key == LeadKeys(new).key("jane@bigco.example")
    assert contacted.data.identifiers == [
        LeadKeys(new).key("jane@bigco.example"),
        LeadKeys(old).key("jane@bigco.example"),
    ]
