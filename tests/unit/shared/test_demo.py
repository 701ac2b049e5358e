"""The demo's traffic: plausible leads and CRM outcomes in a sane order."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson

from leadflow.config import Source, load_config
from leadflow.demo import DemoLead, make_lead, plan_outcomes
from leadflow.events import LeadReceived
from leadflow.senders import signed_request
from leadflow_intake.adapters import adapter_for
from leadflow_intake.adapters.base import SourceContext, WebhookRequest
from leadflow_intake.canonical import ActivityBody, LeadBody
from tests.fixtures.keys import KEYS

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[3]


def test_demo_leads_are_valid_webhook_bodies_from_every_channel() -> None:
    rng = random.Random(7)
    leads = [make_lead(rng, "run1", n) for n in range(300)]
    for lead in leads:
        LeadBody.model_validate(lead.body)
    channels = Counter(lead.body["lead"]["utm"]["source"] for lead in leads)
    assert set(channels) == {"google", "linkedin", "webinar", "ebook", "partner"}
    assert len({lead.body["lead"]["email"] for lead in leads}) == 300


def test_outcomes_are_valid_ordered_and_cover_every_ending() -> None:
    rng = random.Random(11)
    endings: Counter[str] = Counter()
    for n in range(400):
        lead = make_lead(rng, "run2", n)
        plan = plan_outcomes(rng, lead, T0)
        kinds = [o.kind for o in plan]
        endings[kinds[-1] if kinds else "never"] += 1
        assert [o.occurred_at for o in plan] == sorted(o.occurred_at for o in plan)
        assert all(o.occurred_at > T0 for o in plan)
        if plan:
            assert kinds[0] == "contacted"
        for outcome in plan:
            ActivityBody.model_validate(outcome.body("lk_" + "0" * 24, "ana"))
        if "won" in kinds:
            assert (plan[-1].amount or 0) > 0
    assert set(endings) == {
        "never",
        "contacted",
        "rejected",
        "accepted",
        "converted",
        "won",
        "lost",
    }


def test_better_channels_convert_better() -> None:
    rng = random.Random(3)

    def sales(quality: float) -> int:
        lead = DemoLead({}, quality, 500)
        return sum(
            1 for _ in range(2000) if any(o.kind == "won" for o in plan_outcomes(rng, lead, T0))
        )

    assert sales(0.8) > sales(0.3)


def test_demo_calls_are_what_the_ivr_and_callrail_senders_post() -> None:
    config = load_config(ROOT / "config" / "example.yaml")
    ivr = config.sources["ivr"]
    questions = {name: list(q.answers) for name, q in ivr.questions.items()}
    rng = random.Random(5)
    leads = [
        make_lead(rng, "feedbeef", n, ivr_questions=questions, tracked_calls=True)
        for n in range(400)
    ]

    kinds = Counter(lead.kind for lead in leads)
    assert set(kinds) == {"standard", "twilio", "callrail"}
    assert kinds["standard"] > kinds["twilio"] + kinds["callrail"]
    callers: set[str | None] = set()
    answered: Counter[bool] = Counter()
    for lead in leads:
        if lead.kind == "standard":
            LeadBody.model_validate(lead.body)
            continue
        name = "ivr" if lead.kind == "twilio" else "callrail"
        received = parsed(name, config.sources[name], orjson.dumps(lead.body))
        assert received.activity == ("ivr_call" if name == "ivr" else "phone_call")
        callers.add(received.lead.phone)
        if name == "ivr":
            for question, value in received.lead.answers.items():
                assert value in ivr.questions[question].answers.values()
            assert set(received.lead.answers) == set(questions)
        else:
            answered[received.lead.custom["answered"]] += 1
    assert len(callers) == kinds["twilio"] + kinds["callrail"]
    assert set(answered) == {True, False}


def test_without_call_sources_every_demo_lead_is_a_form() -> None:
    rng = random.Random(5)
    assert {make_lead(rng, "feedbeef", n).kind for n in range(200)} == {"standard"}


def parsed(name: str, source: Source, body: bytes) -> LeadReceived:
    """The lead.received the intake makes of a body posted through `source`, signed."""
    adapter = adapter_for(source.kind)
    request = signed_request(name, source, "secret", "http://intake.test", body, now=0)
    webhook = WebhookRequest("POST", request.url, request.headers, request.body)
    context = SourceContext(name, source, ["secret"], KEYS)
    delivery = adapter.authenticate(webhook, context, now=0, tolerance_s=300) or "d"
    [event] = adapter.parse(webhook, context, delivery_id=delivery, now=T0).events
    data = event.envelope().data
    assert isinstance(data, LeadReceived)
    return data
