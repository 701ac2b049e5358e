"""Sticky ownership: a company's leads stay with the rep who already works it (`sticky: true`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from leadflow.events import Company, Envelope, Lead, LeadActivity, LeadAssigned, new_event
from leadflow_router.availability import MISSED, RepLoad
from leadflow_router.domain import route, sticky_domain
from leadflow_router.replay import Replay
from leadflow_router.rules import company_domain
from tests.fixtures.routing import NOW, make_config, scored, state

STICKY_RULES: list[dict[str, Any]] = [
    {
        "name": "enterprise-size",
        "team": "enterprise",
        "sticky": True,
        "when": [{"field": "lead.company.size", "gte": 1000}],
    },
]
CONFIG = make_config(rules=STICKY_RULES)


def big(domain: str | None = None, email: str | None = None) -> Lead:
    return Lead(email=email, company=Company(size=5000, domain=domain))


# The company domain.


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        (Lead(company=Company(domain="https://www.Acme.com/about")), "acme.com"),
        (Lead(company=Company(domain=" ACME.com. ")), "acme.com"),
        (Lead(email="jo@Sales.Acme.com"), "sales.acme.com"),
        (Lead(email="jo@acme.io", company=Company(domain="acme.com")), "acme.com"),
        (Lead(email="jo@gmail.com"), None),
        (Lead(email="jo@GMAIL.com", company=Company(domain="www.gmail.com")), None),
        (Lead(email="jo@gmail.com", company=Company(domain="acme.com")), "acme.com"),
        (Lead(email="jo@acme.com", company=Company(domain="gmail.com")), "acme.com"),
        (Lead(email="not-an-address"), None),
        (Lead(), None),
    ],
)
def test_company_domain_is_normalized_and_never_free_mail(lead: Lead, expected: str | None) -> None:
    assert company_domain(lead, {"gmail.com"}) == expected


def test_the_configured_free_mail_domains_are_excluded() -> None:
    config = make_config(
        scoring={"version": "t1", "mql_threshold": 60, "domains": {"personal": ["Acme.com"]}}
    )

    assert sticky_domain(config, scored(Lead(email="jo@acme.com"))) is None
    assert sticky_domain(CONFIG, scored(Lead(email="jo@acme.com"))) == "acme.com"
    assert sticky_domain(CONFIG, scored(Lead(email="jo@outlook.com"))) is None


def test_only_a_team_rule_can_be_sticky() -> None:
    with pytest.raises(ValidationError, match="is sticky but names a rep"):
        make_config(rules=[{"name": "to-gus", "rep": "gus", "sticky": True}])


# Decisions.


def test_an_open_lead_of_the_company_keeps_the_next_one_with_its_rep() -> None:
    decision = route(
        CONFIG, scored(big("acme.com")), NOW, state(CONFIG, owners={"acme.com": ["ben"]})
    )

    assert (decision.outcome, decision.rule, decision.team) == (
        "assigned",
        "enterprise-size",
        "enterprise",
    )
    assert (decision.rep_id, decision.method) == ("ben", "sticky")
    assert decision.reason == "sticky: owner of acme.com is Ben Carter"
    assert decision.details == {"domain": "acme.com"}
    assert decision.by_rotation is False


def test_the_email_domain_counts_when_the_company_gives_none() -> None:
    lead = big(email="jo@acme.com")

    decision = route(CONFIG, scored(lead), NOW, state(CONFIG, owners={"acme.com": ["chloe"]}))

    assert (decision.rep_id, decision.method) == ("chloe", "sticky")


def test_a_rule_that_is_not_sticky_ignores_the_owner() -> None:
    config = make_config()

    decision = route(
        config, scored(big("acme.com")), NOW, state(config, owners={"acme.com": ["ben"]})
    )

    assert (decision.rep_id, decision.method) == ("ana", "round_robin")


def test_the_owner_keeps_the_company_above_their_caps() -> None:
    config = make_config(reps={"ben": {"max_open": 2}}, rules=STICKY_RULES)
    loads = {"ben": RepLoad(open=2)}

    decision = route(
        config,
        scored(big("acme.com")),
        NOW,
        state(config, owners={"acme.com": ["ben"]}, loads=loads),
    )

    assert (decision.rep_id, decision.method) == ("ben", "sticky")
    assert decision.reason == (
        "sticky: owner of acme.com is Ben Carter (above the cap: open-lead cap reached (2/2 open))"
    )
    assert decision.skipped == {}


def test_an_owner_out_of_office_leaves_the_lead_to_the_rules_distribution_saying_so() -> None:
    config = make_config(
        reps={"ben": {"out_of_office": [{"start": "2026-11-26", "end": "2026-11-27"}]}},
        rules=STICKY_RULES,
    )

    decision = route(
        config, scored(big("acme.com")), NOW, state(config, owners={"acme.com": ["ben"]})
    )

    assert (decision.rep_id, decision.method) == ("ana", "round_robin")
    assert decision.reason.startswith(
        "sticky: Ben Carter (owner of acme.com) cannot take it: out of office"
    )
    assert decision.reason.endswith(
        "; rule 'enterprise-size' sends it to team 'enterprise'; round robin gives Ana Silva "
        "the next turn"
    )
    assert decision.skipped["ben"].startswith("out of office")


def test_the_next_owner_who_can_take_it_keeps_it() -> None:
    config = make_config(reps={"ben": {"active": False}}, rules=STICKY_RULES)

    decision = route(
        config, scored(big("acme.com")), NOW, state(config, owners={"acme.com": ["ben", "chloe"]})
    )

    assert (decision.rep_id, decision.method) == ("chloe", "sticky")
    assert decision.skipped == {"ben": "inactive"}


def test_a_rep_the_escalation_excludes_is_not_kept() -> None:
    decision = route(
        CONFIG,
        scored(big("acme.com")),
        NOW,
        state(CONFIG, owners={"acme.com": ["ben"]}, excluded=frozenset({"ben"})),
    )

    assert decision.rep_id == "ana"
    assert decision.skipped["ben"] == MISSED


def test_an_owner_outside_the_rules_team_is_not_followed() -> None:
    decision = route(
        CONFIG, scored(big("acme.com")), NOW, state(CONFIG, owners={"acme.com": ["dev"]})
    )

    assert (decision.rep_id, decision.method) == ("ana", "round_robin")
    assert decision.reason.startswith("sticky: nobody in team 'enterprise' works acme.com yet; ")


def test_a_lead_without_a_company_domain_goes_by_the_distribution() -> None:
    lead = big(email="jo@gmail.com")

    decision = route(CONFIG, scored(lead), NOW, state(CONFIG, owners={"gmail.com": ["ben"]}))

    assert (decision.rep_id, decision.method) == ("ana", "round_robin")
    assert decision.reason.startswith("sticky: no company domain (none given, or a free-mail one);")


def test_the_accounts_owner_keeps_it_above_caps_when_the_account_step_passed_them() -> None:
    config = make_config(
        reps={"chloe": {"max_per_day": 1}},
        rules=STICKY_RULES,
        accounts=[{"name": "Acme", "domains": ["acme.com"], "owner": "chloe"}],
    )
    loads = {"chloe": RepLoad(today=1)}

    decision = route(config, scored(big("acme.com")), NOW, state(config, loads=loads))

    assert (decision.rep_id, decision.method, decision.account) == ("chloe", "sticky", "Acme")
    assert decision.reason.startswith(
        "sticky: owner of account Acme is Chloé Martin (above the cap"
    )


# The use case, in memory: the book carries owners from lead to lead.


def score(lead_key: str, lead: Lead) -> Envelope:
    data = scored(lead, lead_key=lead_key)
    return new_event("lead.scored", data, source="/test", time=NOW, event_id=f"score-{lead_key}")


def lost(lead_key: str) -> Envelope:
    at = NOW + timedelta(minutes=1)
    data = LeadActivity(lead_key=lead_key, activity="lost", occurred_at=at, source="crm")
    return new_event("lead.lost", data, source="/test", time=at, event_id=f"lost-{lead_key}")


def test_in_one_batch_the_second_lead_of_a_new_company_follows_the_first() -> None:
    replay = Replay(CONFIG)

    routed = replay.apply(
        [
            score("a1", big("acme.com")),
            score("o1", big("other.com")),
            score("a2", big(email="kim@www.acme.com")),
            score("g1", big(email="jo@gmail.com")),
            score("g2", big(email="al@gmail.com")),
        ],
        NOW,
    )

    got = [(d.rep_id, d.method) for d in routed.decisions if d is not None]
    assert got == [
        ("ana", "round_robin"),
        ("ben", "round_robin"),
        ("ana", "sticky"),
        ("chloe", "round_robin"),
        ("ana", "round_robin"),
    ]
    assert [row.domain for row in replay.store.assignments] == [
        "acme.com",
        "other.com",
        "acme.com",
        None,
        None,
    ]
    lead_assigned = routed.writes.events[2].data
    assert isinstance(lead_assigned, LeadAssigned)
    assert lead_assigned.reason == "sticky: owner of acme.com is Ana Silva"


def test_a_company_whose_leads_are_all_closed_goes_by_the_distribution_again() -> None:
    replay = Replay(CONFIG)
    replay.apply([score("a1", big("acme.com"))], NOW)
    [decision] = replay.apply([score("a2", big("acme.com"))], NOW).decisions
    assert decision is not None
    assert (decision.rep_id, decision.method) == ("ana", "sticky")

    replay.apply([lost("a1"), lost("a2")], NOW + timedelta(minutes=2))
    [decision] = replay.apply([score("a3", big("acme.com"))], NOW).decisions

    assert decision is not None
    assert (decision.rep_id, decision.method) == ("ben", "round_robin")


def test_a_company_lead_closed_earlier_in_the_batch_keeps_nothing() -> None:
    replay = Replay(CONFIG)

    routed = replay.apply(
        [score("a1", big("acme.com")), lost("a1"), score("a2", big("acme.com"))], NOW
    )

    got = [(d.rep_id, d.method) for d in routed.decisions if d is not None]
    assert got == [("ana", "round_robin"), ("ben", "round_robin")]
