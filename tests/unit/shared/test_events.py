"""The event contract: envelopes round-trip, ids are deterministic, keys hide identities."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from leadflow import topics
from leadflow.events import (
    EVENT_NAMESPACE,
    PAYLOAD_TYPES,
    Company,
    Envelope,
    Lead,
    LeadActivity,
    LeadAssigned,
    LeadErased,
    LeadMerged,
    LeadPooled,
    LeadReceived,
    LeadScored,
    LeadUnassigned,
    Payload,
    ScoreReason,
    SlaAlert,
    derived_event_id,
    new_event,
)
from tests.fixtures.keys import lead_key_for

KEY = lead_key_for("ana@example.com")
RECEIVED_AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
LATER = RECEIVED_AT + timedelta(minutes=3)
LEAD = Lead(
    email="ana@example.com",
    job_title="VP Sales",
    company=Company(name="Acme", domain="acme.example", size=800, industry="software"),
    country="DE",
    utm={"source": "linkedin"},
    answers={"budget": "yes"},
    custom={"crm_id": 42},
)


def received() -> LeadReceived:
    """A form fill."""
    return LeadReceived(
        lead_key=KEY,
        source="web",
        source_kind="standard",
        delivery_id="d-1",
        activity="demo_request",
        received_at=RECEIVED_AT,
        lead=LEAD,
    )


def activity(kind: Any) -> LeadActivity:
    """A CRM outcome of `kind`."""
    return LeadActivity(
        lead_key=KEY,
        activity=kind,
        occurred_at=LATER,
        source="crm",
        rep_id="ana",
        reason="budget approved",
        amount=1200.5,
        currency="EUR",
    )


def scored() -> LeadScored:
    """A qualifying score."""
    return LeadScored(
        lead_key=KEY,
        model_version="t1",
        score=65,
        fit=25,
        engagement=40,
        tier="mql",
        qualified=True,
        newly_qualified=True,
        reasons=[
            ScoreReason(rule="senior-title", group="fit", points=25),
            ScoreReason(rule="demo-request", group="engagement", points=40, detail="x via web"),
        ],
        scored_at=LATER,
        received_at=RECEIVED_AT,
        source="web",
        lead=LEAD,
    )


def assigned() -> LeadAssigned:
    """An assignment through rotation."""
    return LeadAssigned(
        lead_key=KEY,
        assignment_id="as-1",
        rep_id="ben",
        rep_name="Ben Carter",
        team="enterprise",
        rule="enterprise-size",
        tier="mql",
        reason="round robin",
        assigned_at=LATER,
        received_at=RECEIVED_AT,
        previous_rep_ids=["ana"],
    )


def unassigned() -> LeadUnassigned:
    """A lead left in a team queue."""
    return LeadUnassigned(
        lead_key=KEY,
        team="smb",
        rule="fallback",
        tier="mql",
        reason="nobody available",
        queued_at=LATER,
        received_at=RECEIVED_AT,
    )


def pooled() -> LeadPooled:
    """A lead left waiting in a team's pool, its clock starting at arrival."""
    return LeadPooled(
        lead_key=KEY,
        assignment_id="as-0",
        team="enterprise",
        rule="enterprise-size",
        tier="mql",
        reason="rule 'enterprise-size' sends it to team 'enterprise'; it waits in the pool",
        pooled_at=LATER,
        received_at=RECEIVED_AT,
        unclaimed_at=LATER + timedelta(minutes=15),
        sla_starts="arrival",
        source="web",
    )


def alert(stage: Any) -> SlaAlert:
    """An SLA alert at `stage`."""
    return SlaAlert(
        lead_key=KEY,
        assignment_id="as-1",
        stage=stage,
        policy="hot-mql",
        rep_id="ben",
        rep_name="Ben Carter",
        team="enterprise",
        manager_email="grace@example.com",
        assigned_at=LATER,
        due_at=LATER + timedelta(minutes=5),
        fired_at=LATER + timedelta(minutes=6),
        late_by_s=60.0,
        message="Ben Carter has not contacted the lead.",
    )


EXAMPLES: dict[str, Payload] = {
    "lead.received": received(),
    "lead.contacted": activity("contacted"),
    "lead.accepted": activity("accepted"),
    "lead.rejected": activity("rejected"),
    "lead.converted": activity("converted"),
    "lead.won": activity("won"),
    "lead.lost": activity("lost"),
    "lead.scored": scored(),
    "lead.merged": LeadMerged(
        survivor=KEY,
        absorbed=["lk_00000000000000000000000b"],
        identifiers=[KEY, "lk_00000000000000000000000c"],
        merged_at=LATER,
    ),
    "lead.erased": LeadErased(
        lead_key=KEY, keys=[KEY, "lk_00000000000000000000000c"], erased_at=LATER
    ),
    "lead.assigned": assigned(),
    "lead.reassigned": assigned(),
    "lead.pooled": pooled(),
    "lead.unassigned": unassigned(),
    "sla.warning": alert("warning"),
    "sla.breached": alert("breached"),
    "sla.escalated": alert("escalated"),
}


def test_every_event_type_has_an_example() -> None:
    assert sorted(EXAMPLES) == sorted(PAYLOAD_TYPES)


def test_a_merge_is_published_under_its_survivor() -> None:
    merged = EXAMPLES["lead.merged"]
    assert isinstance(merged, LeadMerged)
    event = new_event("lead.merged", merged, source="/leadflow/scoring", time=LATER)
    assert event.subject == merged.lead_key == KEY
    assert merged.aliases() == ["lk_00000000000000000000000b", "lk_00000000000000000000000c"]
    assert "lead_key" not in event.model_dump()["data"]


def test_an_activity_written_before_identifiers_reads_with_none() -> None:
    data = activity("contacted").model_dump(mode="json")
    data.pop("identifiers")
    assert LeadActivity.model_validate(data).identifiers == []


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_envelope_round_trip(event_type: str) -> None:
    event = new_event(
        event_type, EXAMPLES[event_type], source="/leadflow/test", time=LATER, event_id="ev-1"
    )

    parsed = Envelope.from_bytes(event.to_bytes())

    assert parsed == event
    assert type(parsed.data) is PAYLOAD_TYPES[event_type]
    assert parsed.data == EXAMPLES[event_type]


def test_envelope_is_cloudevents_json() -> None:
    event = new_event("lead.scored", scored(), source="/leadflow/scoring", time=LATER, event_id="e")

    document = orjson.loads(event.to_bytes())

    assert {k: v for k, v in document.items() if k != "data"} == {
        "specversion": "1.0",
        "id": "e",
        "source": "/leadflow/scoring",
        "type": "lead.scored",
        "subject": KEY,
        "time": "2026-11-26T09:03:00Z",
        "datacontenttype": "application/json",
    }
    assert document["data"]["reasons"][1] == {
        "rule": "demo-request",
        "group": "engagement",
        "points": 40,
        "detail": "x via web",
        "base_points": None,
        "decay": 1.0,
        "half_life_s": None,
        "age_s": None,
        "occurred_at": None,
        "disqualifies": False,
    }


def test_new_event_defaults_to_a_fresh_uuid() -> None:
    first = new_event("lead.received", received(), source="/s", time=LATER)
    second = new_event("lead.received", received(), source="/s", time=LATER)

    assert uuid.UUID(first.id).version == 4
    assert first.id != second.id
    assert first.subject == KEY


def test_non_utc_time_survives_the_round_trip() -> None:
    lisbon_summer = timezone(timedelta(hours=1))
    event = new_event(
        "lead.received", received(), source="/s", time=LATER.astimezone(lisbon_summer)
    )

    parsed = Envelope.from_bytes(event.to_bytes())

    assert parsed.time == LATER
    assert parsed.time.utcoffset() == timedelta(hours=1)


def raw_event(**changes: Any) -> bytes:
    """A valid `lead.received` event as bytes, with some top-level keys changed."""
    document = orjson.loads(
        new_event("lead.received", received(), source="/s", time=LATER).to_bytes()
    )
    return orjson.dumps({**document, **changes})


def test_unknown_event_type_is_rejected() -> None:
    with pytest.raises(ValidationError, match=re.escape("unknown event type 'lead.exploded'.")):
        Envelope.from_bytes(raw_event(type="lead.exploded"))


def test_missing_event_type_is_rejected() -> None:
    document = orjson.loads(raw_event())
    del document["type"]

    with pytest.raises(ValidationError, match=re.escape("unknown event type None.")):
        Envelope.from_bytes(orjson.dumps(document))


def test_unknown_event_type_is_rejected_when_built_in_code() -> None:
    # The producer side must refuse what every consumer would refuse.
    with pytest.raises(ValueError, match=re.escape("unknown event type 'lead.exploded'.")):
        new_event("lead.exploded", received(), source="/s", time=LATER)


def test_payload_must_match_the_event_type() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Envelope.from_bytes(raw_event(type="lead.scored"))


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"specversion": "0.3"}, ("specversion",)),
        ({"id": ""}, ("id",)),
        ({"subject": ""}, ("subject",)),
        ({"datacontenttype": "text/xml"}, ("datacontenttype",)),
        ({"time": "2026-11-26T09:03:00"}, ("time",)),
        ({"time": "yesterday"}, ("time",)),
        ({"partitionkey": "x"}, ("partitionkey",)),
    ],
)
def test_invalid_envelope_is_rejected(changes: dict[str, Any], location: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        Envelope.from_bytes(raw_event(**changes))

    assert [error["loc"] for error in caught.value.errors()] == [location]


def test_naive_envelope_time_is_rejected() -> None:
    with pytest.raises(ValidationError, match="Input should have timezone info"):
        new_event("lead.received", received(), source="/s", time=datetime(2026, 11, 26, 9, 3))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("received_at", "2026-11-26T09:00:00"),
        ("received_at", datetime(2026, 11, 26, 9, 0)),
    ],
)
def test_naive_payload_time_is_rejected(field: str, value: Any) -> None:
    data = {**received().model_dump(), field: value}

    with pytest.raises(ValidationError, match="Input should have timezone info"):
        LeadReceived.model_validate(data)


def test_naive_payload_time_in_bytes_is_rejected() -> None:
    document = orjson.loads(raw_event())
    document["data"]["received_at"] = "2026-11-26T09:00:00"

    with pytest.raises(ValidationError) as caught:
        Envelope.from_bytes(orjson.dumps(document))

    assert [error["loc"] for error in caught.value.errors()] == [("received_at",)]
    assert caught.value.errors()[0]["type"] == "timezone_aware"


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"lead.received"'])
def test_bytes_that_are_not_an_event_raise_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        Envelope.from_bytes(raw)


def test_envelope_is_frozen() -> None:
    event = new_event("lead.received", received(), source="/s", time=LATER)

    with pytest.raises(ValidationError, match="Instance is frozen"):
        event.subject = "lk_other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "payload",
    [
        {"lead_key": KEY, "activity": "called", "occurred_at": LATER, "source": "crm"},
        {"lead_key": KEY, "activity": "won", "occurred_at": LATER, "source": "crm", "amount": -1},
    ],
)
def test_invalid_activity_is_rejected(payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LeadActivity.model_validate(payload)


def test_derived_event_id_is_deterministic() -> None:
    assert derived_event_id("web", "d-1") == "344dbc91-8b02-5965-ad3c-9e0c88476a89"
    assert derived_event_id("web", "d-1") == derived_event_id("web", "d-1")
    assert uuid.UUID(derived_event_id("web", "d-1")).version == 5


@given(parts=st.lists(st.text(max_size=40), min_size=1, max_size=4))
@settings(max_examples=300, deadline=None)
def test_derived_event_id_is_the_uuid5_of_the_joined_parts(parts: list[str]) -> None:
    assert derived_event_id(*parts) == str(uuid.uuid5(EVENT_NAMESPACE, "\x1f".join(parts)))


@pytest.mark.parametrize(
    ("parts", "other"),
    [
        (("web", "d-1"), ("web", "d-2")),
        (("web", "d-1"), ("crm", "d-1")),
        (("web", "d-1"), ("d-1", "web")),
        (("ab", "c"), ("a", "bc")),
        (("web", "d-1"), ("web", "d-1", "")),
        (("sla.breached", "as-1"), ("sla.warning", "as-1")),
    ],
)
def test_derived_event_ids_differ_for_different_parts(
    parts: tuple[str, ...], other: tuple[str, ...]
) -> None:
    assert derived_event_id(*parts) != derived_event_id(*other)


@pytest.mark.parametrize(
    ("event_type", "topic"),
    [
        ("lead.received", "leads.received"),
        ("lead.contacted", "leads.activity"),
        ("lead.accepted", "leads.activity"),
        ("lead.rejected", "leads.activity"),
        ("lead.converted", "leads.activity"),
        ("lead.won", "leads.activity"),
        ("lead.lost", "leads.activity"),
        ("lead.scored", "leads.scored"),
        ("lead.assigned", "leads.assigned"),
        ("lead.reassigned", "leads.assigned"),
        ("lead.unassigned", "leads.assigned"),
        ("lead.pooled", "leads.assigned"),
        ("sla.warning", "leads.alerts"),
        ("sla.breached", "leads.alerts"),
        ("sla.escalated", "leads.alerts"),
    ],
)
def test_topic_for(event_type: str, topic: str) -> None:
    assert topics.topic_for(event_type) == topic


def test_every_event_type_has_a_topic() -> None:
    lanes = {topics.topic_for(t, lane) for t in PAYLOAD_TYPES for lane in ("live", "bulk")}
    assert lanes == set(topics.ALL) - {topics.DLQ}


@pytest.mark.parametrize(
    ("event_type", "topic"),
    [
        ("lead.received", "leads.received.bulk"),
        ("lead.scored", "leads.scored.bulk"),
        ("lead.assigned", "leads.assigned"),
        ("lead.contacted", "leads.activity"),
    ],
)
def test_topic_for_bulk_lane(event_type: str, topic: str) -> None:
    assert topics.topic_for(event_type, "bulk") == topic


@pytest.mark.parametrize("event_type", ["billing.charged", "", "leads.received", "scored"])
def test_topic_for_unknown_type(event_type: str) -> None:
    with pytest.raises(ValueError, match=r"^no topic carries events of type ") as caught:
        topics.topic_for(event_type)

    assert str(caught.value) == f"no topic carries events of type {event_type!r}."
