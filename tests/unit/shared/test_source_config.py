"""Source options in the YAML: mapping targets, IVR questions, and options that fit the kind."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from leadflow.config import Source


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            {"kind": "marketo", "mapping": {"shoe_size": "x"}},
            "mapping target 'shoe_size' is not a lead field",
        ),
        ({"kind": "marketo", "mapping": {"utm.": "x"}}, "mapping target 'utm.'"),
        ({"kind": "standard", "mapping": {"email": "mail"}}, "mapping does not apply"),
        ({"kind": "hubspot", "questions": {"budget": {}}}, "questions apply to kind twilio"),
        ({"kind": "twilio", "questions": {"Budget!": {}}}, "question name 'Budget!'"),
        ({"kind": "marketo", "public_base_url": "https://x.example"}, "public_base_url applies"),
        ({"kind": "twilio", "public_base_url": "ftp://x.example"}, "public_base_url"),
        ({"kind": "callrail", "secret_header": "x-token"}, "secret_header applies to kind marketo"),
        ({"kind": "marketo", "rate_limit": {"per_second": 0}}, "rate_limit.per_second"),
    ],
)
def test_invalid_source_options_explain_themselves(source: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Source.model_validate(source)
    assert message in str(raised.value)


def test_valid_source_options() -> None:
    source = Source.model_validate(
        {
            "kind": "twilio",
            "public_base_url": "https://leads.example.com/intake",
            "questions": {"budget": {"param": "b", "answers": {"1": "low"}}},
            "mapping": {"custom.agent": "AgentId", "country": ""},
            "rate_limit": {"per_second": 5, "burst": 10},
        }
    )
    assert source.questions["budget"].answers == {"1": "low"}
    assert source.mapping["country"] == ""
