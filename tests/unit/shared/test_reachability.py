"""`leadflow config check` warns about scoring rules no configured source can trigger."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from leadflow.config import LeadflowConfig, Source
from leadflow.reachability import ConfigWarning, emits, unreachable_rules
from leadflow_cli.app import app
from tests.unit.shared.test_config import VALID

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "example.yaml"
QUESTIONS = {
    "budget": {"answers": {"1": "under_10k", "2": "10k_to_50k", "3": "over_50k"}},
    "authority": {"answers": {"1": "decision_maker", "2": "influencer"}},
}
IVR = {"kind": "twilio", "questions": QUESTIONS}
CALLRAIL = {"kind": "callrail"}
WEB = {"kind": "standard"}
# The hand-raise the example shipped with: the web posts' vocabulary, not the IVR's.
HAND_WRITTEN_BANT = {
    "name": "ivr-bant",
    "when": [
        {"field": "activity", "equals": "inbound_call"},
        {"field": "answers.budget", "in": ["yes", "approved"]},
        {"field": "answers.authority", "in": ["yes", "decision_maker"]},
    ],
}


def config(
    sources: dict[str, Any],
    *,
    hand_raises: list[dict[str, Any]] | None = None,
    rules: list[dict[str, Any]] | None = None,
    **scoring: Any,
) -> LeadflowConfig:
    """VALID with these sources, hand-raises, extra rules and scoring settings (and no
    hand-raise activity unless given)."""
    data = copy.deepcopy(yaml.safe_load(VALID))
    data["sources"] = sources
    data["scoring"]["hand_raises"] = hand_raises or []
    data["scoring"]["hand_raise_activities"] = []
    data["scoring"]["rules"] += rules or []
    data["scoring"].update(scoring)
    return LeadflowConfig.model_validate(data)


def rule(name: str, *when: dict[str, Any], group: str = "engagement") -> dict[str, Any]:
    return {"name": name, "group": group, "points": 10, "when": list(when)}


def messages(warnings: list[ConfigWarning]) -> list[str]:
    return [w.message for w in warnings]


def test_the_shipped_configurations_trigger_every_rule() -> None:
    for path in (EXAMPLE, ROOT / "examples" / "candidate.yaml"):
        data = yaml.safe_load(path.read_text())
        assert unreachable_rules(LeadflowConfig.model_validate(data)) == [], path


def test_a_hand_raise_on_answers_no_question_gives_and_an_activity_the_ivr_never_sends() -> None:
    warnings = unreachable_rules(config({"web": WEB, "ivr": IVR}, hand_raises=[HAND_WRITTEN_BANT]))

    assert warnings == [
        ConfigWarning(
            ("scoring", "hand_raises", 0, "when", 1),
            "hand-raise 'ivr-bant' waits for answers.budget 'approved' or 'yes', which no "
            "question maps to: source 'ivr' maps question 'budget' to 10k_to_50k, over_50k, "
            "under_10k.",
        ),
        # The web could post any activity, but no web post carries the IVR's answers.
        ConfigWarning(
            ("scoring", "hand_raises", 0),
            "hand-raise 'ivr-bant' can never be met: its answers (answers.authority) come "
            "only from source 'ivr', never with activity 'inbound_call': 'ivr' (twilio) "
            "sends 'ivr_call'.",
        ),
    ]


def test_a_hand_raise_the_ivr_can_meet_is_not_warned_about() -> None:
    bant = {
        "name": "ivr-bant",
        "when": [
            {"field": "activity", "equals": "ivr_call"},
            {"field": "answers.budget", "in": ["10k_to_50k", "over_50k", "yes"]},
            {"field": "lead.answers.authority", "equals": "Decision_Maker "},
            {"field": "answers.need", "exists": False},
        ],
    }

    assert unreachable_rules(config({"ivr": IVR}, hand_raises=[bant])) == []


def test_an_activity_no_source_sends() -> None:
    # Without a standard source, every activity comes from an adapter.
    warnings = unreachable_rules(
        config(
            {"ivr": IVR, "callrail": CALLRAIL},
            rules=[rule("walk-in", {"field": "activity", "in": ["inbound_call", "walk_in"]})],
            hand_raise_activities=["demo_request"],
        )
    )

    assert messages(warnings) == [
        "engagement rule 'walk-in' waits for activity 'inbound_call' or 'walk_in', which is "
        "never sent: 'ivr' sends 'ivr_call'; 'callrail' sends 'phone_call'.",
        "hand-raise activity 'demo_request' is never sent: 'ivr' sends 'ivr_call'; "
        "'callrail' sends 'phone_call'.",
    ]
    assert [w.loc for w in warnings] == [
        ("scoring", "rules", 1, "when", 0),
        ("scoring", "hand_raise_activities", 0),
    ]


@pytest.mark.parametrize(
    ("source", "sends"),
    [
        pytest.param(WEB, None, id="standard-body-names-it"),
        pytest.param({"kind": "marketo"}, None, id="marketo-template-names-it"),
        pytest.param(
            {"kind": "marketo", "mapping": {"activity": ""}}, {"form_fill"}, id="marketo-unmapped"
        ),
        pytest.param(CALLRAIL, {"phone_call"}, id="callrail"),
        pytest.param({"kind": "callrail", "activity": "inbound_call"}, {"inbound_call"}, id="set"),
        pytest.param({"kind": "callrail", "mapping": {"activity": "call_type"}}, None, id="mapped"),
        pytest.param({"kind": "hubspot"}, {"form_fill"}, id="hubspot"),
        pytest.param(IVR, {"ivr_call"}, id="twilio"),
    ],
)
def test_what_activity_a_source_sends(source: dict[str, Any], sends: set[str] | None) -> None:
    activities = emits("s", Source.model_validate(source)).activities
    assert activities == (None if sends is None else frozenset(sends))


def test_answers_a_mapping_gives_take_any_value() -> None:
    marketo = {"kind": "marketo", "mapping": {"answers.budget": "budgetRange"}}
    bant = {"name": "bant", "when": [{"field": "answers.budget", "equals": "yes"}]}

    assert emits("m", Source.model_validate(marketo)).answers == {"budget": None}
    assert unreachable_rules(config({"marketo": marketo}, hand_raises=[bant])) == []


def test_a_question_no_source_asks_and_a_source_that_is_not_configured() -> None:
    warnings = unreachable_rules(
        config(
            {"web": WEB, "ivr": IVR},
            rules=[
                rule("shoe-size", {"field": "lead.answers.shoe", "exists": True}, group="fit"),
                rule("from-crm", {"field": "source", "in": ["crm", "sales-crm"]}),
            ],
        )
    )

    assert messages(warnings) == [
        "fit rule 'shoe-size' tests lead.answers.shoe, but no source asks question 'shoe' "
        "(a twilio source's questions, or a mapping to answers.shoe).",
        "engagement rule 'from-crm' names source 'crm' or 'sales-crm', which is not "
        "configured (the sources are 'ivr' or 'web').",
    ]


def test_answers_that_only_two_sources_give_separately() -> None:
    other = {"kind": "twilio", "questions": {"timeframe": {"answers": {"1": "now"}}}}
    bant = {
        "name": "split",
        "when": [
            {"field": "answers.budget", "equals": "over_50k"},
            {"field": "answers.timeframe", "equals": "now"},
        ],
    }

    [warning] = unreachable_rules(config({"ivr": IVR, "ivr2": other}, hand_raises=[bant]))

    assert warning.message == (
        "hand-raise 'split' can never be met: no one source gives all of answers.budget, "
        "answers.timeframe."
    )


def test_a_source_condition_narrows_the_sources_a_rule_waits_for() -> None:
    callrail_only = rule(
        "ivr-via-callrail",
        {"field": "source", "equals": "callrail"},
        {"field": "activity", "equals": "ivr_call"},
    )

    [warning] = unreachable_rules(
        config({"web": WEB, "ivr": IVR, "callrail": CALLRAIL}, rules=[callrail_only])
    )

    assert warning.message == (
        "engagement rule 'ivr-via-callrail' can never be met: it applies only to source "
        "'callrail', never with activity 'ivr_call': 'callrail' (callrail) sends 'phone_call'."
    )


def test_a_fit_rule_testing_the_touch_never_fires() -> None:
    [warning] = unreachable_rules(
        config(
            {"web": WEB}, rules=[rule("caller", {"field": "activity", "equals": "x"}, group="fit")]
        )
    )

    assert warning.loc == ("scoring", "rules", 1, "when", 0)
    assert warning.message.startswith("fit rule 'caller' tests 'activity', but fit rules see only")


def test_config_check_prints_each_warning_at_its_line_and_still_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    shipped = EXAMPLE.read_text()
    old = shipped.replace(
        "        - {field: activity, equals: ivr_call}\n"
        "        - {field: lead.answers.budget, in: [10k_to_50k, over_50k]}\n",
        "        - {field: activity, equals: inbound_call}\n"
        '        - {field: answers.budget, in: ["yes", approved]}\n',
    )
    assert old != shipped
    path = tmp_path / "leadflow.yaml"
    path.write_text(old)
    line = old.splitlines().index('        - {field: answers.budget, in: ["yes", approved]}') + 1

    warned = CliRunner().invoke(app, ["config", "check", str(path)])
    clean = CliRunner().invoke(app, ["config", "check", str(EXAMPLE)])

    assert warned.exit_code == clean.exit_code == 0, warned.output + clean.output
    assert (
        f"warning: line {line}: scoring.hand_raises.0.when.1: hand-raise 'ivr-bant' waits for "
        "answers.budget 'approved' or 'yes', which no question maps to: source 'ivr' maps "
        "question 'budget' to 10k_to_50k, over_50k, under_10k." in warned.output
    )
    assert warned.output.count("warning:") == 1
    assert "OK" in clean.output
    assert "warning" not in clean.output
