"""Rules: the routing document, first match in order, time windows, account matching."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from leadflow.config import Account, RoutingRule
from leadflow.events import Company, Lead
from leadflow_router.rules import (
    first_match,
    lead_domains,
    match_account,
    matching_rules,
    reads_time,
    routing_document,
    rule_matches,
)
from tests.fixtures.routing import NOW, scored


def test_routing_document_has_lead_score_source_and_local_time() -> None:
    lead = Lead(email="ana@example.com", country="DE", company=Company(size=1200))

    doc = routing_document(scored(lead, source="crm", tier="watch", score=45), NOW, "Asia/Tokyo")

    assert doc == {
        "lead": {
            "email": "ana@example.com",
            "country": "DE",
            "company": {"size": 1200},
            "utm": {},
            "answers": {},
            "custom": {},
        },
        "score": {"score": 45, "fit": 5, "engagement": 40, "tier": "watch"},
        "source": "crm",
        # 14:30 UTC on Thursday is 23:30 in Tokyo.
        "time": {
            "hour": 23,
            "minute": 30,
            "hhmm": "23:30",
            "weekday": 4,
            "day": "thu",
            "date": "2026-11-26",
        },
    }


def rules(*specs: tuple[str, list[dict[str, Any]]], **fields: Any) -> list[RoutingRule]:
    """Rules to team `t`, each with its conditions."""
    return [
        RoutingRule.model_validate({"name": n, "team": "t", "when": w, **fields}) for n, w in specs
    ]


ORDERED = rules(
    ("big", [{"field": "lead.company.size", "gte": 1000}]),
    (
        "big-german",
        [{"field": "lead.company.size", "gte": 1000}, {"field": "lead.country", "equals": "DE"}],
    ),
    ("german", [{"field": "lead.country", "equals": "DE"}]),
    ("business-hours", [{"field": "time.hour", "gte": 9}, {"field": "time.hour", "lt": 18}]),
)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"lead": {"company": {"size": 5000}, "country": "DE"}}, "big"),
        ({"lead": {"company": {"size": 10}, "country": "DE"}}, "german"),
        ({"lead": {"country": "de"}, "time": {"hour": 10}}, "german"),
        ({"lead": {"country": "FR"}, "time": {"hour": 10}}, "business-hours"),
        ({"lead": {"country": "FR"}, "time": {"hour": 18}}, None),
        ({}, None),
    ],
)
def test_first_match_takes_rules_in_order(doc: dict[str, Any], expected: str | None) -> None:
    rule = first_match(ORDERED, doc, NOW)

    assert (rule.name if rule else None) == expected


def test_every_matching_rule_in_order() -> None:
    doc = {"lead": {"company": {"size": 5000}, "country": "DE"}, "time": {"hour": 10}}

    assert [r.name for r in list(matching_rules(ORDERED, doc, NOW))] == [
        "big",
        "big-german",
        "german",
        "business-hours",
    ]


def test_rule_without_conditions_matches_everything() -> None:
    catch_all = rules(("never", [{"field": "x", "exists": True}]), ("always", []))

    rule = first_match(catch_all, {}, NOW)

    assert rule is not None
    assert rule.name == "always"


def test_first_match_of_no_rules() -> None:
    assert first_match([], {"lead": {}}, NOW) is None


NEW_YORK_DAY = {
    "timezone": "America/New_York",
    "days": ["mon-fri"],
    "start": "09:00",
    "end": "17:00",
}


@pytest.mark.parametrize(
    ("moment", "during", "outside"),
    [
        # 14:30 UTC Thursday = 09:30 in New York (EST): inside business hours.
        (datetime(2026, 11, 26, 14, 30, tzinfo=UTC), True, False),
        # 13:59 UTC = 08:59 New York: before opening.
        (datetime(2026, 11, 26, 13, 59, tzinfo=UTC), False, True),
        # 22:00 UTC = 17:00 New York: the end is exclusive.
        (datetime(2026, 11, 26, 22, 0, tzinfo=UTC), False, True),
        # Saturday noon New York.
        (datetime(2026, 11, 28, 17, 0, tzinfo=UTC), False, True),
        # Summer time: 13:30 UTC in July = 09:30 EDT.
        (datetime(2026, 7, 2, 13, 30, tzinfo=UTC), True, False),
    ],
)
def test_time_windows_are_read_in_their_zone(moment: datetime, during: bool, outside: bool) -> None:
    [in_hours] = rules(("in-hours", []), during=[NEW_YORK_DAY])
    [after_hours] = rules(("after-hours", []), outside=[NEW_YORK_DAY])

    assert (first_match([in_hours], {}, moment) is not None) is during
    assert (first_match([after_hours], {}, moment) is not None) is outside


def test_overnight_window_belongs_to_the_day_it_starts() -> None:
    [night] = rules(
        ("night", []),
        during=[{"timezone": "UTC", "days": ["fri"], "start": "22:00", "end": "06:00"}],
    )

    assert first_match([night], {}, datetime(2026, 11, 27, 23, 0, tzinfo=UTC))  # Fri 23:00
    assert first_match([night], {}, datetime(2026, 11, 28, 5, 59, tzinfo=UTC))  # Sat 05:59
    assert not first_match([night], {}, datetime(2026, 11, 28, 6, 0, tzinfo=UTC))
    assert not first_match([night], {}, datetime(2026, 11, 26, 23, 0, tzinfo=UTC))  # Thu


ACCOUNTS = [
    Account(
        name="Acme", domains=["acme.com", "https://www.acme.co.uk/"], owner="ana", priority=True
    ),
    Account(name="Globex", domains=["globex.io"], owner="ben"),
]


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        (Lead(email="jo@acme.com"), ("Acme", "acme.com")),
        (Lead(email="jo@ACME.com"), ("Acme", "acme.com")),
        (Lead(email="jo@eu.sales.acme.com"), ("Acme", "acme.com")),
        (Lead(email="jo@acme.co.uk"), ("Acme", "acme.co.uk")),
        (
            Lead(email="jo@gmail.com", company=Company(domain="www.globex.io")),
            ("Globex", "globex.io"),
        ),
        (Lead(email="jo@notacme.com"), None),
        (Lead(email="jo@com"), None),
        (Lead(phone="+14155550123"), None),
    ],
)
def test_account_match_by_company_or_email_domain(
    lead: Lead, expected: tuple[str, str] | None
) -> None:
    matched = match_account(ACCOUNTS, lead)

    assert ((matched[0].name, matched[1]) if matched else None) == expected


def test_company_domain_is_tried_before_the_email_domain() -> None:
    lead = Lead(email="jo@acme.com", company=Company(domain="globex.io"))

    assert lead_domains(lead) == ["globex.io", "acme.com"]
    matched = match_account(ACCOUNTS, lead)
    assert matched is not None
    assert matched[0].name == "Globex"


def test_no_accounts_match_nothing() -> None:
    assert match_account([], Lead(email="jo@acme.com")) is None


# Most rules name a country: they are indexed by it, and must still match in order.
INDEXED = rules(
    ("us", [{"field": "lead.country", "equals": "US"}]),
    ("big", [{"field": "lead.company.size", "gte": 1000}]),
    (
        "dach",
        [
            {"field": "lead.country", "in": ["DE", "AT", "CH"]},
            {"field": "lead.company.size", "gte": 10},
        ],
    ),
    ("german", [{"field": "lead.country", "equals": " de "}]),
    ("numeric", [{"field": "lead.country", "equals": 49}]),
    (
        "us-or-de",
        [{"field": "lead.country", "in": ["us"]}, {"field": "lead.country", "in": ["de"]}],
    ),
    ("anyone", []),
)


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        ({"country": "US", "company": {"size": 5000}}, ["us", "big", "anyone"]),
        ({"country": "de", "company": {"size": 5000}}, ["big", "dach", "german", "anyone"]),
        ({"country": " De", "company": {"size": 5}}, ["german", "anyone"]),
        ({"country": "FR", "company": {"size": 5000}}, ["big", "anyone"]),
        ({"company": {"size": 5000}}, ["big", "anyone"]),
        ({"country": 49}, ["numeric", "anyone"]),
        ({"country": ["DE"]}, ["anyone"]),
    ],
)
def test_rules_indexed_by_a_field_match_as_every_rule_tested_in_order(
    lead: dict[str, Any], expected: list[str]
) -> None:
    doc = {"lead": lead}

    assert [r.name for r in matching_rules(INDEXED, doc, NOW)] == expected
    assert [r.name for r in INDEXED if rule_matches(r, doc, NOW)] == expected


def test_the_time_is_left_out_of_the_document_only_for_rules_that_never_read_it() -> None:
    lead = scored(Lead(country="DE"))

    assert reads_time(ORDERED) is True
    assert reads_time(INDEXED) is False
    assert routing_document(lead, NOW, with_time=False) == {
        k: v for k, v in routing_document(lead, NOW).items() if k != "time"
    }
