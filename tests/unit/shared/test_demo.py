"""The demo's traffic: plausible leads and CRM outcomes in a sane order."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

from leadflow.demo import DemoLead, make_lead, plan_outcomes
from leadflow_intake.canonical import ActivityBody, LeadBody

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


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
