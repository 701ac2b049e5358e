"""Each consumer's table of event type -> handler is what its service is documented to consume.

What each service consumes is written here from the design (DESIGN.md §3, §7-§9), the
services' docstrings and docs/architecture.md; every type a consumer's topics carry
(docs/asyncapi.yaml: `types_on`, `RECEIVES`) is either in its table or named here as one
it has no use for, so a new event type on a topic fails here until someone decides.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

import leadflow_router.app
import leadflow_scoring.app
import leadflow_sla.app
from leadflow.erasure import ERASED
from leadflow.runtime import ConsumerSpec
from leadflow.settings import Settings
from leadflow_cli.asyncapi import RECEIVES, types_on

OUTCOMES = {
    "lead.contacted",
    "lead.accepted",
    "lead.rejected",
    "lead.converted",
    "lead.won",
    "lead.lost",
}
# group -> (the types it applies, the types its topics carry that it has no use for).
CONSUMES: dict[str, tuple[set[str], set[str]]] = {
    # Scores new events; it publishes `lead.erased` itself, having erased first.
    "leadflow-scoring": ({"lead.received"}, set()),
    "leadflow-scoring-bulk": ({"lead.received"}, set()),
    # Routes scores, reassigns on escalation, closes on outcomes (contacts keep a lead with
    # a rep marked away), follows merges, forgets erased people; warnings and breaches are
    # for people, not for routing.
    "leadflow-router": (
        {"lead.scored", "sla.escalated", "lead.merged", ERASED, *OUTCOMES},
        {"sla.warning", "sla.breached"},
    ),
    "leadflow-router-bulk": ({"lead.scored"}, set()),
    # Opens a window on an assignment, stops it on an outcome, moves it on a merge; a lead
    # pooled or queued has no rep to wait for.
    "leadflow-sla-monitor": (
        {"lead.assigned", "lead.reassigned", "lead.merged", ERASED, *OUTCOMES},
        {"lead.pooled", "lead.unassigned"},
    ),
    # Every step of a lead's lifecycle (received, scored, assigned, each outcome).
    "leadflow-reporting": (
        {
            "lead.received",
            "lead.scored",
            "lead.merged",
            "lead.assigned",
            "lead.reassigned",
            ERASED,
            *OUTCOMES,
        },
        {"lead.pooled", "lead.unassigned"},
    ),
}


def consumers(monkeypatch: pytest.MonkeyPatch) -> dict[str, ConsumerSpec]:
    """Every consumer group as the services build them, by group."""
    specs: dict[str, ConsumerSpec] = {}

    def capture(name: str, settings: Settings, built: list[ConsumerSpec], **_: Any) -> FastAPI:
        specs.update({spec.group: spec for spec in built})
        return FastAPI()

    settings = Settings(env="development")
    for module in (leadflow_scoring.app, leadflow_router.app, leadflow_sla.app):
        monkeypatch.setattr(module, "consumer_service", capture)
        module.create_app(settings)
    return specs


def topics_of(group: str) -> tuple[str, ...]:
    [read] = [groups[group] for groups in RECEIVES.values() if group in groups]
    return read


@pytest.mark.parametrize("group", sorted(CONSUMES))
def test_a_consumer_s_table_is_what_its_service_consumes(
    group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = consumers(monkeypatch)[group]
    applied, unused = CONSUMES[group]
    assert spec.accepts == applied
    carried = {t for topic in topics_of(group) for t in types_on(topic)}
    assert applied | unused == carried, "a type its topics carry is neither applied nor declined"
    assert not applied & unused


@pytest.mark.parametrize("group", sorted(CONSUMES))
def test_a_consumer_s_events_but_erasures_reach_one_handler_a_run(
    group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One maker for every type but `lead.erased`: a batch mixing them is one run, one
    # set-based call, the same few statements as a batch of one type.
    spec = consumers(monkeypatch)[group]
    makers = {make for event_type, make in spec.handlers.items() if event_type != ERASED}
    assert len(makers) == 1


def test_every_consumer_group_is_declared_here(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(consumers(monkeypatch)) == set(CONSUMES)
