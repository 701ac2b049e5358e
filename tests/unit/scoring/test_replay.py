"""Identity resolution in memory; the README tour: the example config puts each lead in its
tier, each example parsed by the adapter of the source it is posted through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from leadflow.config import load_config
from leadflow.events import Lead, LeadReceived
from leadflow.senders import signed_request
from leadflow.settings import DEV_SECRETS
from leadflow_intake.adapters import adapter_for
from leadflow_intake.adapters.base import SourceContext, WebhookRequest
from leadflow_intake.canonical import LeadBody, to_event
from leadflow_scoring.identity import Identifier, ProfileHead, identifiers_of, survivor
from leadflow_scoring.replay import Replay
from tests.fixtures.keys import KEYS, lead_key_for

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = load_config(ROOT / "config" / "example.yaml")
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
EMAIL, PHONE = "omar@northwind.example", "+16135550188"


def received(body: dict[str, Any], at: datetime, delivery: str) -> LeadReceived:
    """A `lead.received` as the intake would publish it for a webhook body."""
    event = to_event(
        LeadBody.model_validate(body), keys=KEYS, source="web", delivery_id=delivery, now=at
    )
    assert isinstance(event.data, LeadReceived)
    return event.data


def example(name: str) -> dict[str, Any]:
    """An example webhook body from examples/."""
    body: dict[str, Any] = orjson.loads((ROOT / "examples" / name).read_bytes())
    return body


def through(source: str, name: str, at: datetime, query: str = "", **changes: Any) -> LeadReceived:
    """The `lead.received` of examples/`name` (its fields `changes` changed, None removing
    one) posted through `source`, as its adapter parses the request its sender signs."""
    config = EXAMPLE.sources[source]
    adapter = adapter_for(config.kind)
    secret = DEV_SECRETS[source]
    fields = {**example(name), **changes}
    body = orjson.dumps({k: v for k, v in fields.items() if v is not None})
    signed = signed_request(
        source, config, secret, "http://intake.test", body, now=at.timestamp(), query=query
    )
    queried = dict([query.split("=", 1)]) if query else {}
    request = WebhookRequest("POST", signed.url, signed.headers, signed.body, queried)
    context = SourceContext(source, config, [secret], KEYS)
    delivery = adapter.authenticate(request, context, now=at.timestamp(), tolerance_s=300)
    [event] = adapter.parse(request, context, delivery_id=delivery or name, now=at).events
    data = event.envelope().data
    assert isinstance(data, LeadReceived)
    return data


def test_identifiers_of_an_event() -> None:
    data = LeadReceived(
        lead_key=lead_key_for(EMAIL),
        source="web",
        source_kind="standard",
        delivery_id="d",
        received_at=T0,
        lead=Lead(email=EMAIL, phone=PHONE),
    )

    assert identifiers_of(data, KEYS) == sorted(
        [Identifier(lead_key_for(EMAIL), "email"), Identifier(lead_key_for(PHONE), "phone")],
        key=lambda i: i.key,
    )


def test_survivor_prefers_the_qualified_then_the_oldest_profile() -> None:
    old = ProfileHead("lk_b", T0, None)
    young = ProfileHead("lk_a", T0 + timedelta(days=1), None)
    qualified = ProfileHead("lk_c", T0 + timedelta(days=2), T0 + timedelta(days=2))

    assert survivor([old, young]) == old
    assert survivor([young, qualified, old]) == qualified
    assert (
        survivor([ProfileHead("lk_z", T0, None), ProfileHead("lk_y", T0, None)]).lead_key == "lk_y"
    )


def test_a_call_from_a_known_number_merges_into_the_form_profile() -> None:
    replay = Replay(EXAMPLE.scoring, KEYS)
    form = through("web", "watch.json", T0)
    call = through("ivr", "call.json", T0 + timedelta(hours=2))

    first = replay.apply(form, "e1", T0)
    second = replay.apply(call, "e2", T0 + timedelta(hours=2))

    assert call.lead_key == lead_key_for("+16135550188") != first.lead_key
    assert second.lead_key == first.lead_key == form.lead_key
    assert (first.tier, second.tier, second.newly_qualified) == ("watch", "mql", True)
    assert second.identifiers == sorted([form.lead_key, call.lead_key])
    assert second.touches == 2
    assert second.first_touch is not None
    assert second.first_touch.activity == "pricing_page"
    assert second.last_touch is not None
    assert second.last_touch.activity == "ivr_call"
    assert second.qualified_by == "hand-raise"
    assert second.lead.job_title == "Operations Manager"


def test_an_event_linking_two_profiles_merges_them_and_qualifies_once() -> None:
    replay = Replay(EXAMPLE.scoring, KEYS)
    by_phone = replay.apply(
        received({"event": "lead", "activity": "demo_request", "lead": {"phone": PHONE}}, T0, "d1"),
        "e1",
        T0,
    )
    later = T0 + timedelta(seconds=30)
    by_email = replay.apply(
        received(
            {"event": "lead", "activity": "demo_request", "lead": {"email": EMAIL}}, later, "d2"
        ),
        "e2",
        later,
    )
    linked = replay.apply(
        received(
            {"event": "lead", "activity": "webinar", "lead": {"email": EMAIL, "phone": PHONE}},
            T0,
            "d3",
        ),
        "e3",
        T0 + timedelta(minutes=1),
    )

    assert by_phone.newly_qualified
    assert by_email.newly_qualified
    assert linked.newly_qualified is False
    assert linked.lead_key == by_phone.lead_key
    assert linked.merged_from == [by_email.lead_key]
    assert linked.touches == 3


def test_a_mistyped_phone_links_nobody_and_costs_fit_points() -> None:
    replay = Replay(EXAMPLE.scoring, KEYS)
    mistyped = "+1 415 555"  # a phone number, but not a valid one: kept on leads with an email

    def lead(email: str, delivery: str) -> dict[str, Any]:
        body = {"event": "lead", "activity": "webinar", "lead": {"email": email, "phone": mistyped}}
        return replay.apply(received(body, T0, delivery), delivery, T0).model_dump()

    ana, bo = lead("ana@northwind.example", "d1"), lead("bo@contoso.example", "d2")

    assert ana["lead"]["phone"] == bo["lead"]["phone"] == "+1415555"
    assert ana["lead_key"] != bo["lead_key"]
    assert ana["identifiers"] == [lead_key_for("ana@northwind.example")]
    assert bo["merged_from"] == []
    assert "invalid-phone" in [r["rule"] for r in ana["reasons"]]


def test_a_later_mistyped_phone_does_not_replace_the_number_that_works() -> None:
    replay = Replay(EXAMPLE.scoring, KEYS)
    first = {"event": "lead", "activity": "webinar", "lead": {"email": EMAIL, "phone": PHONE}}
    typo = {
        "event": "lead",
        "activity": "pricing_page",
        "lead": {"email": EMAIL, "phone": "+1 613 55"},
    }
    later = T0 + timedelta(hours=1)
    replay.apply(received(first, T0, "d1"), "e1", T0)
    scored = replay.apply(received(typo, later, "d2"), "e2", later)

    assert scored.lead.phone == PHONE
    assert "invalid-phone" not in [r.rule for r in scored.reasons]
    assert scored.touches == 2


README_TOUR = [
    ("web", "lead.json", "mql", "A2", "hand-raise"),
    ("web", "watch.json", "watch", "B3", "watch-list"),
    ("web", "nurture.json", "nurture", "D3", "nurture"),
    ("web", "disqualified.json", "disqualified", "A2", "disqualified"),
    ("import", "purchased.json", "watch", "A4", "watch-list"),
    ("ivr", "call.json", "mql", "D3", "hand-raise"),  # alone: not merged into Omar's form
    ("callrail", "callrail-call.json", "watch", "D2", "watch-list"),
    ("hubspot", "hubspot-contact.json", "mql", "A4", "threshold"),
]


@pytest.mark.parametrize(("source", "name", "tier", "grade", "last_reason"), README_TOUR)
def test_the_example_config_scores_the_tour_leads_into_each_tier(
    source: str, name: str, tier: str, grade: str, last_reason: str
) -> None:
    scored = Replay(EXAMPLE.scoring, KEYS).apply(through(source, name, T0), name, T0)

    assert (scored.tier, scored.grade, scored.reasons[-1].rule) == (tier, grade, last_reason)
    assert all(r.detail for r in scored.reasons)
    assert scored.model_version == EXAMPLE.scoring.version


def test_tour_reasons_read_well() -> None:
    disqualified = Replay(EXAMPLE.scoring, KEYS).apply(
        received(example("disqualified.json"), T0, "x"), "x", T0
    )
    purchased = Replay(EXAMPLE.scoring, KEYS).apply(
        received(example("purchased.json"), T0, "y"), "y", T0
    )

    assert disqualified.disqualified_by == ["competitor"]
    assert disqualified.reasons[-1].detail == "disqualified by competitor"
    assert [r.detail for r in purchased.reasons if r.rule == "purchased-list"] == [
        "a purchased-list record does not qualify on fit alone: engagement 0 is below 15"
    ]


def test_an_ivr_caller_short_of_bant_is_not_an_mql() -> None:
    # Under 10k, a researcher, exploring, later: the caller is scored, not handed off.
    weak = through("ivr", "call.json", T0, budget="1", authority="3", need="2", timeframe="3")
    scored = Replay(EXAMPLE.scoring, KEYS).apply(weak, "weak", T0)

    assert weak.lead.answers == {
        "budget": "under_10k",
        "authority": "researcher",
        "need": "exploring",
        "timeframe": "later",
    }
    assert (scored.tier, scored.grade, scored.qualified_by) == ("nurture", "D3", None)
    assert [r.rule for r in scored.reasons if r.group == "engagement"] == ["ivr-call"]


def test_ivr_answers_posted_one_question_at_a_time_qualify_with_the_last() -> None:
    replay = Replay(EXAMPLE.scoring, KEYS)
    call = dict.fromkeys(("budget", "authority", "need", "timeframe"))
    tiers = []
    for n, (question, digits) in enumerate((("budget", "2"), ("authority", "1"), ("need", "1"))):
        at = T0 + timedelta(seconds=n)
        step = through("ivr", "call.json", at, f"question={question}", **call, Digits=digits)
        tiers.append(replay.apply(step, question, at).tier)
    at = T0 + timedelta(seconds=3)
    last = through("ivr", "call.json", at, "question=timeframe", **call, Digits="1")
    scored = replay.apply(last, "timeframe", at)

    assert tiers == ["nurture", "nurture", "nurture"]
    assert (scored.tier, scored.qualified_by, scored.touches) == ("mql", "hand-raise", 4)
    assert scored.lead.answers == {
        "budget": "10k_to_50k",
        "authority": "decision_maker",
        "need": "urgent",
        "timeframe": "this_quarter",
    }
    # Four requests of one call: the IVR counts for at most 20 points.
    assert [r.rule for r in scored.reasons if r.rule == "ivr-call"] == ["ivr-call"] * 4
    assert scored.engagement == 20


@pytest.mark.parametrize(
    ("changes", "rules", "tier"),
    [
        pytest.param({}, ["answered-call", "first-time-caller", "long-call"], "watch", id="tour"),
        pytest.param(
            {"answered": False, "duration": "0"},
            ["missed-call", "first-time-caller"],
            "nurture",
            id="missed",
        ),
        pytest.param(
            {"first_call": False, "duration": "95"},
            ["answered-call"],
            "nurture",
            id="short-repeat-caller",
        ),
    ],
)
def test_callrail_calls_score_by_answer_length_and_first_call(
    changes: dict[str, Any], rules: list[str], tier: str
) -> None:
    call = through("callrail", "callrail-call.json", T0, **changes)
    scored = Replay(EXAMPLE.scoring, KEYS).apply(call, "call", T0)

    assert call.activity == "phone_call"
    assert [r.rule for r in scored.reasons if r.group == "engagement"] == rules
    assert scored.tier == tier


def test_a_call_is_scored_on_what_that_call_was_not_on_the_callers_latest() -> None:
    replay = Replay(EXAMPLE.scoring, KEYS)
    first = through("callrail", "callrail-call.json", T0)
    later = T0 + timedelta(hours=1)
    again = through(
        "callrail",
        "callrail-call.json",
        later,
        resource_id="CAL2",
        answered=False,
        first_call=False,
        duration="0",
    )
    replay.apply(first, "first", T0)
    scored = replay.apply(again, "again", later)

    hits = [r.rule for r in scored.reasons if r.group == "engagement"]
    assert sorted(hits) == sorted(
        ["answered-call", "first-time-caller", "long-call", "missed-call"]
    )
    assert scored.lead.custom["first_call"] is False
