"""The watch list for real: signed webhooks over HTTP -> the four service processes -> Kafka,
on SQLite and on PostgreSQL.

A lead just under the bar (a pricing-page visit from an analyst) is watch-listed and routed
to the inside-sales team by the watch-list rule; a re-score within the tier routes nothing;
its demo request qualifies it, and the router routes it again by the MQL rules, the watch
assignment closed as upgraded, the history kept. The SLA monitor ends the watch-list
follow-up and starts the MQL one; reports count the lead as an MQL, owned by the MQL rep.

Follow-up windows are long here, so that no alert can race the test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from leadflow.events import Envelope, LeadAssigned, LeadScored
from tests.fixtures.auth import AUTH
from tests.fixtures.broker import TopicReader
from tests.fixtures.keys import lead_key_for
from tests.fixtures.stack import CONFIG, Stack, stack_per_database

pytestmark = pytest.mark.integration


def watch_list_config(path: Path) -> Path:
    """The test configuration with an inside-sales team that takes the watch list."""
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    config["reps"].append({"id": "iris", "name": "Iris Novak", "email": "iris@example.com"})
    config["teams"].append(
        {
            "name": "inside-sales",
            "manager": {"name": "Henry Moore", "email": "henry@example.com"},
            "reps": ["iris"],
        }
    )
    routing = config["routing"]
    routing["tiers"] = ["mql", "watch"]
    watch = {"field": "score.tier", "equals": "watch"}
    routing["rules"].insert(0, {"name": "watch-list", "team": "inside-sales", "when": [watch]})
    config["sla"] = {
        "policies": [
            {"name": "watch-follow-up", "window": "1d", "tiers": ["watch"]},
            {"name": "slow-mql", "window": "10m", "tiers": ["mql"]},
        ]
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Broker + four services routing the watch list; SQLite, then PostgreSQL."""
    config = watch_list_config(tmp_path_factory.mktemp("tiers-config") / "tiers.yaml")
    yield from stack_per_database(request, tmp_path_factory, "tiers", config=config)


def lead(email: str, activity: str, source: str) -> dict[str, Any]:
    """An analyst at a large software company: 30 points of fit; a pricing-page visit (15)
    puts them on the watch list (40-59), a demo request (40) over the bar (60)."""
    return {
        "event": "lead",
        "activity": activity,
        "lead": {
            "email": email,
            "job_title": "Analyst",
            "company": {"name": "Acme", "size": 1500, "industry": "software"},
            "country": "US",
            "utm": {"source": source},
        },
    }


def posted(stack: Stack, body: dict[str, Any]) -> str:
    response = stack.post("web", body)
    assert response.status_code == 202, response.text
    return str(response.json()["lead_key"])


async def events(
    reader: TopicReader, predicate: Callable[[Envelope], bool], count: int = 1
) -> list[Envelope]:
    """The first `count` events that satisfy `predicate`, polling until they come."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        await reader.poll()
        found = [e for e in reader.events if predicate(e)]
        if len(found) >= count:
            return found
    raise AssertionError(f"timed out waiting for {count} events")


def until(
    fetch: Callable[[], httpx.Response], done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll an API until its answer satisfies `done`; that answer."""
    deadline = time.monotonic() + 30
    last: Any = None
    while time.monotonic() < deadline:
        response = fetch()
        if response.status_code == 200:
            last = response.json()
            if done(last):
                return dict(last)
        time.sleep(0.2)
    raise AssertionError(f"timed out; the last answer was {last}")


def get(stack: Stack, service: str, path: str) -> Callable[[], httpx.Response]:
    return lambda: httpx.get(f"{stack.services[service].url}{path}", timeout=5, headers=AUTH)


async def test_a_watch_listed_lead_goes_to_inside_sales_and_again_to_sales_as_an_mql(
    stack: Stack,
) -> None:
    email = f"wes.{uuid.uuid4().hex[:8]}@bigco.example"
    key, source = lead_key_for(email), f"e2e-watch-{uuid.uuid4().hex[:6]}"
    topics = ["leads.scored", "leads.assigned"]

    def routed(e: Envelope) -> bool:
        return e.subject == key and e.type in ("lead.assigned", "lead.unassigned")

    async with TopicReader(stack.bootstrap, topics) as reader:
        assert posted(stack, lead(email, "pricing_page", source)) == key
        [first] = await events(reader, routed)
        # A second visit: re-scored, still on the watch list; nothing more is routed.
        posted(stack, lead(email, "content_download", source))
        scored = await events(reader, lambda e: e.subject == key and e.type == "lead.scored", 2)
        posted(stack, lead(email, "demo_request", source))
        _, second = await events(reader, routed, 2)

    assert [s.data.tier for s in scored if isinstance(s.data, LeadScored)] == ["watch", "watch"]
    assert isinstance(first.data, LeadAssigned)
    assert isinstance(second.data, LeadAssigned)
    assert (first.data.tier, first.data.team, first.data.rule, first.data.rep_id) == (
        "watch",
        "inside-sales",
        "watch-list",
        "iris",
    )
    assert (second.data.tier, second.data.team, second.data.rule) == (
        "mql",
        "enterprise",
        "enterprise-size",
    )
    assert second.data.previous_rep_ids == ["iris"]
    mql_rep = second.data.rep_id
    assert [e for e in reader.events if routed(e)] == [first, second]

    why = get(stack, "router", f"/v1/leads/{key}/routing")().json()
    assert [(a["team"], a["rep_id"], a["close_reason"]) for a in why["history"]] == [
        ("inside-sales", "iris", "upgraded"),
        ("enterprise", mql_rep, None),
    ]
    assert why["decisions"][-1]["trace"][0] == "upgraded from tier watch to mql: routed again"

    # The watch-list follow-up ends, the MQL one runs.
    windows = until(
        get(stack, "sla-monitor", f"/v1/sla/leads/{key}"), lambda h: len(h["windows"]) == 2
    )["windows"]
    by_assignment = {w["assignment_id"]: w for w in windows}
    watch_window = by_assignment[first.data.assignment_id]
    mql_window = by_assignment[second.data.assignment_id]
    assert (watch_window["policy"], watch_window["status"]) == ("watch-follow-up", "closed")
    assert (mql_window["policy"], mql_window["status"]) == ("slow-mql", "open")

    # Reports: one MQL, owned by the MQL rep.
    lifecycle = until(
        get(stack, "sla-monitor", f"/v1/reports/leads/{key}"),
        lambda lc: lc["rep_id"] == mql_rep,
    )
    assert (lifecycle["tier"], lifecycle["team"]) == ("mql", "enterprise")
    shares = get(stack, "sla-monitor", f"/v1/reports/tiers?source={source}&period=month")()
    assert [(r["tier"], r["leads"]) for r in shares.json()["overall"]] == [("mql", 1)]
