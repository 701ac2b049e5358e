"""The routing use case on the in-memory store: what `leadflow simulate` and these tests run.

Whether it decides as the database does is `tests/integration/test_router_simulation.py`;
here: the run-time roster, outcomes, and failures that must leave the store as it was.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from leadflow.coroutines import complete
from leadflow.events import Company, Envelope, Lead, LeadActivity, new_event
from leadflow_router import domain
from leadflow_router.book import Assignment, Turns, Writes
from leadflow_router.memory import InMemoryRoutingStore
from leadflow_router.replay import Replay
from tests.fixtures.routing import NOW, make_config, scored

BIG = Company(size=5000)  # enterprise: ana, ben, chloe by round robin


def score(lead_key: str, company: Company = BIG) -> Envelope:
    data = scored(Lead(company=company), lead_key=lead_key)
    return new_event("lead.scored", data, source="/test", time=NOW, event_id=f"score-{lead_key}")


def outcome(lead_key: str, kind: str, minutes: int = 0) -> Envelope:
    at = NOW + timedelta(minutes=minutes)
    data = LeadActivity(lead_key=lead_key, activity=kind, occurred_at=at, source="crm")
    return new_event(f"lead.{kind}", data, source="/test", time=at, event_id=f"{kind}-{lead_key}")


def reps(replay: Replay) -> list[tuple[str, str | None]]:
    return [(row.lead_key, row.rep_id) for row in replay.store.assignments]


def test_run_time_overrides_and_absences_in_the_store_are_honoured() -> None:
    replay = Replay(make_config())
    replay.store.absences["ana"] = [
        (NOW - timedelta(days=2), NOW - timedelta(days=1), "ended"),
        (NOW - timedelta(hours=1), NOW + timedelta(hours=1), "dentist"),
    ]
    replay.store.overrides["ben"] = {"max_open": 0}

    [decision] = replay.apply([score("e0")], NOW).decisions

    assert decision is not None
    assert decision.rep_id == "chloe"
    assert decision.skipped == {
        "ana": "out of office until 2026-11-26 15:30 UTC (dentist)",
        "ben": "open-lead cap reached (0/0 open)",
    }


def test_outcomes_close_once_and_credit_conversions_as_the_database_does() -> None:
    replay = Replay(make_config(reps={"ana": {"max_open": 1}}))
    replay.apply([score("e0"), score("e1"), score("e2"), score("e3")], NOW)
    assert reps(replay)[3] == ("e3", "ben")  # ana holds e0, her one open lead

    # An outcome reported twice keeps the first; a conversion after closing still counts.
    replay.apply([outcome("e0", "rejected"), outcome("e0", "lost", 1)], NOW)
    replay.apply([outcome("e0", "converted", 2), score("e4")], NOW)

    e0 = replay.store.assignments[0]
    assert (e0.close_reason, e0.closed_at) == ("rejected", NOW)
    assert e0.converted_at == NOW + timedelta(minutes=2)
    assert reps(replay)[4] == ("e4", "chloe")  # turn order: ana's next turn is after chloe
    open_leads, since = _tallies(replay.store, ["ana", "ben", "chloe"], NOW - timedelta(hours=1))
    assert open_leads == {"ana": 0, "ben": 2, "chloe": 2}
    assert since == {"ana": [1, 1], "ben": [2, 0], "chloe": [2, 0]}


def _tallies(
    store: InMemoryRoutingStore, rep_ids: list[str], at: datetime
) -> tuple[dict[str, int], dict[str, list[int]]]:
    open_leads, counts = complete(store.tallies(rep_ids, [at]))
    return open_leads, counts[at]


def test_a_batch_that_fails_leaves_the_store_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    replay = Replay(make_config())
    replay.apply([score("e0")], NOW)
    before = (replay.store.assignments, len(replay.store.events), len(replay.store.decided))
    route = domain.route
    calls: list[str] = []

    def second_fails(*args: Any, **kwargs: Any) -> domain.Decision:
        calls.append("route")
        if len(calls) == 2:
            raise RuntimeError("the second decision fails")
        return route(*args, **kwargs)

    monkeypatch.setattr(domain, "route", second_fails)
    with pytest.raises(RuntimeError, match="second decision"):
        replay.apply([outcome("e0", "won"), score("e1"), score("e2")], NOW)

    assert (replay.store.assignments, len(replay.store.events), len(replay.store.decided)) == before
    monkeypatch.setattr(domain, "route", route)
    replay.apply([score("e1")], NOW)
    assert reps(replay) == [("e0", "ana"), ("e1", "ben")]  # the turn moved once
    assert replay.store.assignments[0].closed_at is None  # the outcome was not kept


def test_loaded_rows_are_the_batchs_own_copies() -> None:
    replay = Replay(make_config())
    replay.apply([score("e0")], NOW)
    store = replay.store
    [row] = complete(store.history(["e0"]))["e0"]
    row.closed_at, row.rep_id = NOW, "someone"
    turns = complete(store.turns(["enterprise"]))["enterprise"]
    turns.turns = 99

    assert store.assignments[0].closed_at is None
    assert store.assignments[0].rep_id == "ana"
    assert complete(store.turns(["enterprise"]))["enterprise"].turns == 1


def _new(row: Assignment, **changes: Any) -> Writes:
    writes = Writes()
    writes.assignments.append(replace(row, id=None, **changes))
    return writes


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda row: _new(row, assignment_id="other"), id="same lead and seq"),
        pytest.param(lambda row: _new(row, seq=2), id="same assignment id"),
        pytest.param(lambda row: Writes(changed={7: row}), id="changed row never stored"),
        pytest.param(
            lambda row: Writes(turns={"enterprise": Turns("ben", 1, stored=False)}),
            id="first turn twice",
        ),
        pytest.param(
            lambda row: Writes(leads=[scored(lead_key="e0")]), id="routed for the first time twice"
        ),
    ],
)
def test_save_refuses_what_the_tables_would_and_changes_nothing(bad: Any) -> None:
    replay = Replay(make_config())
    replay.apply([score("e0")], NOW)
    store = replay.store
    stored = store.assignments
    writes = bad(stored[0])
    writes.turns.setdefault("smb", Turns("dev", 5, stored=False))
    with pytest.raises(ValueError, match="nothing was saved"):
        complete(store.save(writes, NOW))

    assert store.assignments == stored
    assert complete(store.turns(["enterprise", "smb"])) == {"enterprise": Turns("ana", 1)}
