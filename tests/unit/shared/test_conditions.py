"""Conditions on lead fields: every operator, missing fields, and invalid rule configs."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

import pytest
from pydantic import ValidationError

from leadflow.conditions import Condition, all_match, conjunction, lookup, lookup_path

LEAD: dict[str, Any] = {
    "lead": {
        "email": "ana@example.com",
        "job_title": "VP of Sales",
        "country": "DE",
        "company": {"name": "Acme GmbH", "size": 500, "industry": "Software"},
        "utm": {},
        "answers": {"budget": ""},
        "consent": False,
    },
    "score": {"score": 72, "tier": "mql"},
    "activity": "demo_request",
}


def condition(**config: Any) -> Condition:
    """A condition built the way the YAML loader builds it (aliases such as `in` allowed)."""
    return Condition.model_validate(config)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"field": "lead.country", "equals": "DE"}, True),
        ({"field": "lead.country", "equals": "de"}, True),
        ({"field": "lead.country", "equals": "  De "}, True),
        ({"field": "lead.country", "equals": "AT"}, False),
        ({"field": "lead.company.size", "equals": 500}, True),
        ({"field": "lead.company.size", "equals": 501}, False),
        ({"field": "lead.country", "not_equals": "AT"}, True),
        ({"field": "lead.country", "not_equals": "de"}, False),
        ({"field": "lead.company.industry", "in": ["saas", "software"]}, True),
        ({"field": "lead.company.industry", "in": ["SAAS", "SOFTWARE "]}, True),
        ({"field": "lead.company.industry", "in": ["fintech", "logistics"]}, False),
        ({"field": "lead.company.industry", "in": []}, False),
        ({"field": "lead.company.size", "in": [200, 500]}, True),
        ({"field": "lead.job_title", "prefix": "vp"}, True),
        ({"field": "lead.job_title", "prefix": "VP OF"}, True),
        ({"field": "lead.job_title", "prefix": "of"}, False),
        ({"field": "lead.company.size", "prefix": "50"}, True),
        ({"field": "lead.job_title", "regex": r"\bSales\b"}, True),
        ({"field": "lead.job_title", "regex": r"^Sales"}, False),
        ({"field": "lead.job_title", "regex": r"\bsales\b"}, False),
        ({"field": "lead.job_title", "regex": r"(?i)\bsales\b"}, True),
        ({"field": "lead.company.size", "regex": r"^\d{3}$"}, True),
    ],
)
def test_operator_on_present_field(config: dict[str, Any], expected: bool) -> None:
    assert condition(**config).matches(LEAD) is expected


@pytest.mark.parametrize(
    ("bounds", "size", "expected"),
    [
        ({"gte": 500}, 500, True),
        ({"gte": 500}, 499, False),
        ({"gt": 500}, 500, False),
        ({"gt": 500}, 501, True),
        ({"lte": 500}, 500, True),
        ({"lte": 500}, 501, False),
        ({"lt": 500}, 500, False),
        ({"lt": 500}, 499, True),
        ({"gte": 200, "lt": 1000}, 199, False),
        ({"gte": 200, "lt": 1000}, 200, True),
        ({"gte": 200, "lt": 1000}, 999, True),
        ({"gte": 200, "lt": 1000}, 1000, False),
        ({"gt": 10, "lte": 50}, 10, False),
        ({"gt": 10, "lte": 50}, 50, True),
        ({"gte": 1, "gt": 5, "lte": 9, "lt": 7}, 6, True),
        ({"gte": 1, "gt": 5, "lte": 9, "lt": 7}, 7, False),
        ({"gte": 200}, "250", True),
        ({"gte": 200}, "150.5", False),
        ({"gte": 200}, 200.0, True),
        ({"gte": 200}, "large", False),
        ({"gte": 200}, "1,000", False),
        ({"gte": 200}, [500], False),
    ],
)
def test_numeric_bounds(bounds: dict[str, float], size: Any, expected: bool) -> None:
    doc = {"lead": {"company": {"size": size}}}

    assert condition(field="lead.company.size", **bounds).matches(doc) is expected


@pytest.mark.parametrize(
    ("field", "exists", "expected"),
    [
        ("lead.email", True, True),
        ("lead.email", False, False),
        ("lead.phone", True, False),
        ("lead.phone", False, True),
        ("lead.utm", True, False),
        ("lead.utm", False, True),
        ("lead.answers.budget", True, False),
        ("lead.answers.budget", False, True),
        ("lead.consent", True, True),
        ("lead.company.size", True, True),
        ("lead.company.size.value", True, False),
    ],
)
def test_exists(field: str, exists: bool, expected: bool) -> None:
    assert condition(field=field, exists=exists).matches(LEAD) is expected


def test_exists_treats_an_empty_list_as_absent() -> None:
    doc: dict[str, Any] = {"lead": {"tags": []}}

    assert condition(field="lead.tags", exists=True).matches(doc) is False
    assert condition(field="lead.tags", exists=False).matches(doc) is True


@pytest.mark.parametrize(
    "config",
    [
        {"equals": "DE"},
        {"not_equals": "DE"},
        {"in": ["DE"]},
        {"prefix": "D"},
        {"regex": ".*"},
        {"gte": 0},
        {"lt": 10_000},
    ],
)
@pytest.mark.parametrize("field", ["lead.region", "lead.company.region", "nowhere.at.all"])
def test_missing_field_never_matches(config: dict[str, Any], field: str) -> None:
    assert condition(field=field, **config).matches(LEAD) is False


def test_explicit_null_value_never_matches() -> None:
    doc = {"lead": {"country": None}}

    assert condition(field="lead.country", not_equals="DE").matches(doc) is False


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("activity", "demo_request"),
        ("lead.country", "DE"),
        ("lead.company.size", 500),
        ("lead.company", LEAD["lead"]["company"]),
        ("lead.missing", None),
        ("lead.country.code", None),
        ("lead.company.size.digits", None),
        ("", None),
    ],
)
def test_lookup(path: str, expected: Any) -> None:
    assert lookup(LEAD, path) == expected


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([], True),
        ([{"field": "lead.country", "equals": "de"}], True),
        (
            [
                {"field": "lead.country", "equals": "de"},
                {"field": "lead.company.size", "gte": 200},
                {"field": "score.tier", "in": ["mql"]},
            ],
            True,
        ),
        (
            [
                {"field": "lead.country", "equals": "de"},
                {"field": "lead.company.size", "gte": 1000},
            ],
            False,
        ),
    ],
)
def test_all_match(conditions: list[dict[str, Any]], expected: bool) -> None:
    assert all_match([condition(**c) for c in conditions], LEAD) is expected


def test_in_accepts_its_python_name_too() -> None:
    assert Condition(field="lead.country", in_=["DE", "AT"]).matches(LEAD) is True


def test_condition_is_frozen() -> None:
    cond = condition(field="lead.country", equals="DE")

    with pytest.raises(ValidationError, match="Instance is frozen"):
        cond.equals = "AT"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"field": "lead.country"},
            "condition on 'lead.country' needs an operator: one of equals, not_equals, in, "
            "prefix, regex, gte, gt, lte, lt, exists.",
        ),
        (
            {"field": "lead.country", "equals": None},
            "condition on 'lead.country' needs an operator",
        ),
        (
            {"field": "lead.country", "equals": "DE", "prefix": "D"},
            "condition on 'lead.country' has several operators (equals, prefix); "
            "only numeric bounds (gte/gt/lte/lt) can be combined.",
        ),
        (
            {"field": "lead.company.size", "gte": 10, "exists": True},
            "condition on 'lead.company.size' has several operators (gte, exists); ",
        ),
        (
            {"field": "lead.country", "in": ["DE"], "not_equals": "AT"},
            # The YAML key is `in`; the message must not show the Python name `in_`.
            "has several operators (not_equals, in); ",
        ),
        (
            {"field": "lead.job_title", "regex": "(vp|director"},
            "regex '(vp|director' does not compile: missing ), unterminated subpattern "
            "at position 0.",
        ),
        ({"field": "lead.job_title", "regex": "*vp"}, "regex '*vp' does not compile: "),
    ],
)
def test_invalid_condition_explains_itself(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        condition(**config)


@pytest.mark.parametrize(
    ("config", "location", "message"),
    [
        ({"field": "", "equals": "DE"}, ("field",), "String should have at least 1 character"),
        ({"equals": "DE"}, ("field",), "Field required"),
        (
            {"field": "lead.country", "contains": "D"},
            ("contains",),
            "Extra inputs are not permitted",
        ),
        ({"field": "lead.size", "gte": "big"}, ("gte",), "Input should be a valid number"),
        ({"field": "lead.size", "in": "DE"}, ("in",), "Input should be a valid list"),
        (
            {"field": "lead.email", "exists": "maybe"},
            ("exists",),
            "Input should be a valid boolean",
        ),
    ],
)
def test_invalid_condition_names_the_field(
    config: dict[str, Any], location: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        condition(**config)

    errors = caught.value.errors()
    assert [error["loc"] for error in errors] == [location]
    assert errors[0]["msg"].startswith(message)


@pytest.mark.parametrize(
    ("config", "value", "expected"),
    [
        ({"equals": "500"}, 500, False),
        ({"equals": 500}, "500", False),
        ({"not_equals": "500"}, 500, True),
        ({"in": ["DE", 500]}, 500, True),
        ({"in": ["DE", 500]}, " de", True),
        ({"in": ["de"]}, ["de"], False),
        ({"prefix": "tr"}, True, True),
        ({"regex": "^Tr"}, True, True),
        ({"equals": True}, True, True),
        ({"equals": True}, 1, True),
        ({"gte": 1}, True, True),
    ],
)
def test_text_and_other_values_compare_as_python_does(
    config: dict[str, Any], value: Any, expected: bool
) -> None:
    assert condition(field="lead.x", **config).matches({"lead": {"x": value}}) is expected


def test_nested_values_may_be_any_mapping() -> None:
    doc = {"lead": MappingProxyType({"company": MappingProxyType({"size": 800})})}

    assert condition(field="lead.company.size", gte=500).matches(doc) is True
    assert condition(field="lead.company.size", lt=500).matches(doc) is False
    assert lookup_path(doc, ("lead", "company", "size")) == 800


@pytest.mark.parametrize("size", [0, 1])
@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_a_conjunction_compiles_all_match(count: int, size: int) -> None:
    conditions = [
        condition(field="lead.country", equals="de"),
        condition(field="lead.company.size", gte=size * 1000),
        condition(field="score.tier", **{"in": ["mql"]}),
    ][:count]

    assert conjunction(conditions)(LEAD) is all_match(conditions, LEAD) is (count < 2 or size == 0)
