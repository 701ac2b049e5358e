"""Reports for real: signed webhooks -> four service processes on a real broker -> reports.

The SLA monitor process runs the reporting consumer group; its HTTP reports, the cost
API, the `leadflow report` CLI and the `leadflow demo` generator are exercised against it,
on SQLite and on PostgreSQL. Each test tags its leads with its own campaign and filters
on it, so tests sharing the stack do not see each other's leads.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from tests.fixtures.auth import AUTH
from tests.fixtures.broker import free_port, running_broker
from tests.fixtures.databases import migrated_database_url
from tests.fixtures.stack import Stack, lead_body

pytestmark = pytest.mark.integration

TOKEN = "reporting-test-admin-token-0123456789"


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Broker + four services (reporting inside the SLA monitor), SQLite then PostgreSQL."""
    tmp = tmp_path_factory.mktemp(f"reporting-{request.param}")
    with running_broker() as bootstrap:
        for url in migrated_database_url(request.param, tmp):
            stack = Stack(bootstrap, url, tmp, env={"LEADFLOW_ADMIN_TOKEN": TOKEN})
            stack.start()
            try:
                yield stack
            finally:
                stack.stop()


def reports(stack: Stack) -> str:
    return f"{stack.services['sla-monitor'].url}/v1/reports"


def wait_for_lifecycle(
    stack: Stack, lead_key: str, ready: Callable[[dict[str, Any]], bool], timeout_s: float = 30
) -> dict[str, Any]:
    """Poll the lead's lifecycle until `ready` holds."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{reports(stack)}/leads/{lead_key}", headers=AUTH)
        if response.status_code == 200:
            last = response.json()
            if ready(last):
                return last
        time.sleep(0.2)
    raise AssertionError(f"lifecycle of {lead_key} never got ready; last seen: {last}")


def crm(stack: Stack, lead_key: str, event: str, at: datetime, **fields: Any) -> None:
    body = {"event": event, "lead_key": lead_key, "occurred_at": at.isoformat(), **fields}
    response = stack.post("crm", body)
    assert response.status_code == 202, response.text


def campaign_leads(stack: Stack, campaign: str) -> dict[str, str]:
    """Two enterprise MQLs (a, b) and one small-company nurture lead (c) of one campaign."""
    tag = uuid.uuid4().hex[:8]
    keys = {}
    for name, extra in (
        ("a", {"utm": {"source": "google"}}),
        ("b", {"utm": {"source": "linkedin"}}),
        ("c", {"job_title": "Analyst", "activity": "content_download", "company": {"size": 20}}),
    ):
        body = lead_body(f"{name}.{tag}@bigco.example", campaign=campaign, **extra)
        response = stack.post("web", body)
        assert response.status_code == 202, response.text
        keys[name] = response.json()["lead_key"]
    return keys


def run_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadflow_cli", *args],
        env={**stack.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_reports_from_webhooks_through_the_services(stack: Stack) -> None:
    campaign = f"e2e-{uuid.uuid4().hex[:6]}"
    keys = campaign_leads(stack, campaign)
    a = wait_for_lifecycle(stack, keys["a"], lambda lc: lc["assigned_at"] is not None)
    b = wait_for_lifecycle(stack, keys["b"], lambda lc: lc["assigned_at"] is not None)
    wait_for_lifecycle(stack, keys["c"], lambda lc: lc["tier"] is not None)
    a_in, b_in = datetime.fromisoformat(a["ready_at"]), datetime.fromisoformat(b["ready_at"])
    crm(stack, keys["a"], "contacted", a_in + timedelta(seconds=90), rep_id=a["rep_id"])
    crm(stack, keys["a"], "accepted", a_in + timedelta(hours=1))
    crm(stack, keys["a"], "converted", a_in + timedelta(days=2))
    crm(stack, keys["a"], "won", a_in + timedelta(days=20), amount=5000, currency="USD")
    crm(stack, keys["b"], "contacted", b_in + timedelta(hours=2))
    crm(stack, keys["b"], "rejected", b_in + timedelta(hours=3), reason="No budget")
    wait_for_lifecycle(stack, keys["a"], lambda lc: lc["won_at"] is not None)
    wait_for_lifecycle(stack, keys["b"], lambda lc: lc["rejected_at"] is not None)

    params = {"campaign": campaign}
    funnel = httpx.get(
        f"{reports(stack)}/funnel", params={**params, "by": "segment"}, headers=AUTH
    ).json()
    # a: won; b: contacted then rejected; c: nurture.
    assert [s["leads"] for s in funnel["stages"]] == [3, 2, 2, 2, 1, 1, 1]
    assert funnel["mql_to_sql"] == 0.5
    assert funnel["query"]["campaign"] == campaign
    assert [(r["key"], r["leads"], r["won"], r["revenue"]) for r in funnel["breakdown"]] == [
        ("enterprise", 2, 1, 5000.0),
        ("smb", 1, 0, 0.0),
    ]
    speed = httpx.get(f"{reports(stack)}/speed", params=params, headers=AUTH).json()
    # 90 s and 7200 s: median 3645, p90 90 + 0.9 x 7110 = 6489.
    assert (speed["leads"], speed["contacted"], speed["median_s"], speed["p90_s"]) == (
        2,
        2,
        3645.0,
        6489.0,
    )
    assert [b["leads"] for b in speed["buckets"]] == [1, 0, 1, 0, 0]
    reasons = httpx.get(f"{reports(stack)}/reasons", params=params, headers=AUTH).json()
    assert reasons["reasons"] == [{"reason": "no budget", "leads": 1, "share": 1.0}]
    roi = httpx.get(f"{reports(stack)}/roi", params=params, headers=AUTH).json()
    enterprise = next(r for r in roi["rows"] if r["key"] == "enterprise")
    # 5000 x 0.8 = 4000 profit on 1 sale of 2 leads; 4000 / 1.25 x 0.5 = 1600; 300 a lead.
    assert (enterprise["max_cost_per_lead"], enterprise["cost_per_lead"]) == (1600.0, 300.0)
    assert enterprise["verdict"] == "within"

    auth = {"authorization": f"Bearer {TOKEN}"}
    put = httpx.put(
        f"{reports(stack)}/costs/segment/enterprise", json={"cost_per_lead": 2000}, headers=auth
    )
    assert put.status_code == 200, put.text
    try:
        roi = httpx.get(f"{reports(stack)}/roi", params=params, headers=AUTH).json()
        first = roi["rows"][0]
        assert (first["key"], first["verdict"], first["over_by"], first["over_pct"]) == (
            "enterprise",
            "over",
            400.0,
            0.25,
        )
        assert (roi["flagged"], first["cost_origin"]) == (1, "api")
    finally:
        deleted = httpx.delete(f"{reports(stack)}/costs/segment/enterprise", headers=auth)
        assert deleted.status_code == 204

    cli = run_cli(stack, "report", "funnel", "--campaign", campaign, "--format", "json")
    assert cli.returncode == 0, cli.stderr
    assert [s["leads"] for s in orjson.loads(cli.stdout)["stages"]] == [3, 2, 2, 2, 1, 1, 1]
    speed = ("report", "speed", "--campaign", campaign, "--format", "csv")
    cli = run_cli(stack, *speed, "--table", "summary")
    assert cli.returncode == 0, cli.stderr
    rows = list(csv.reader(io.StringIO(cli.stdout)))
    assert rows[0] == ["metric", "value"]
    assert ["median_s", "3645.0"] in rows
    cli = run_cli(stack, *speed)
    assert cli.returncode == 0, cli.stderr
    header = next(csv.reader(io.StringIO(cli.stdout)))
    assert header[0] == "bucket"
    cli = run_cli(stack, "report", "roi", "--campaign", campaign, "--by", "segment")
    assert cli.returncode == 0, cli.stderr
    assert "Maximum cost per lead by segment" in cli.stdout
    assert "1,600.00" in cli.stdout
    cli = run_cli(stack, "report", "reasons", "--campaign", campaign)
    assert "no budget" in cli.stdout


def test_bad_requests_are_refused_with_a_reason(stack: Stack) -> None:
    url = reports(stack)
    bad_date = httpx.get(f"{url}/funnel", params={"from": "last tuesday"}, headers=AUTH)
    assert bad_date.status_code == 422
    assert bad_date.headers["content-type"] == "application/problem+json"
    [error] = bad_date.json()["errors"]
    assert error["field"] == "query.from"
    assert "is not a date" in error["message"]
    unknown_segment = httpx.get(f"{url}/speed", params={"segment": "nope"}, headers=AUTH)
    assert unknown_segment.status_code == 422
    assert "enterprise, smb, other" in unknown_segment.text
    assert httpx.get(f"{url}/funnel", params={"by": "colour"}, headers=AUTH).status_code == 422
    assert httpx.get(f"{url}/leads/lk_unknown", headers=AUTH).status_code == 404

    cost = f"{url}/costs/segment/smb"
    no_token = httpx.put(cost, json={"cost_per_lead": 5})
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"] == 'Bearer realm="leadflow"'
    wrong = httpx.put(cost, json={"cost_per_lead": 5}, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert TOKEN not in wrong.text
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert (
        httpx.put(f"{url}/costs/segment/nope", json={"cost_per_lead": 5}, headers=auth).status_code
        == 404
    )
    assert httpx.put(cost, json={"cost_per_lead": -5}, headers=auth).status_code == 422
    assert httpx.put(cost, json={"cost": 5}, headers=auth).status_code == 422
    assert (
        httpx.put(f"{url}/costs/region/eu", json={"cost_per_lead": 5}, headers=auth).status_code
        == 422
    )
    assert httpx.delete(f"{url}/costs/campaign/never-set", headers=auth).status_code == 404
    listed = httpx.get(f"{url}/costs", headers=AUTH).json()
    assert {
        "kind": "segment",
        "name": "enterprise",
        "cost_per_lead": 300.0,
        "origin": "config",
    } in (listed["costs"])

    cli = run_cli(stack, "report", "funnel", "--from", "2026-12-01", "--to", "2026-11-01")
    assert cli.returncode == 2
    assert "to must be after from" in cli.stderr
    cli = run_cli(stack, "report", "roi", "--format", "xml")
    assert cli.returncode == 2


def test_the_demo_posts_leads_and_outcomes_every_report_can_read(stack: Stack) -> None:
    before = httpx.get(f"{reports(stack)}/funnel", headers=AUTH).json()["leads"]
    intake, sla = stack.services["intake"].url, stack.services["sla-monitor"].url
    demo = run_cli(
        stack, "demo", "--url", intake, "--reports-url", sla, "--rate", "5", "--duration", "4",
        "--seed", "42",
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    assert re.search(r"Sent 20 leads \([^;]*through web[^;]*; 0 refused\)", demo.stdout), (
        demo.stdout
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        funnel = httpx.get(f"{reports(stack)}/funnel", headers=AUTH).json()
        if funnel["leads"] >= before + 20:
            break
        time.sleep(0.5)
    assert funnel["leads"] >= before + 20
    sources = {row["key"] for row in funnel["breakdown"]}
    assert sources & {"google", "linkedin", "webinar", "ebook", "partner"}
    speed = httpx.get(f"{reports(stack)}/speed", headers=AUTH).json()
    assert speed["contacted"] > 0
    for kind in ("funnel", "speed", "reasons", "roi"):
        shown = run_cli(stack, "report", kind)
        assert shown.returncode == 0, shown.stderr
        assert f"{kind} report" in shown.stdout


def test_the_demo_says_so_when_nothing_listens(stack: Stack) -> None:
    demo = run_cli(stack, "demo", "--url", f"http://127.0.0.1:{free_port()}", "--duration", "1")
    assert demo.returncode == 2
    assert "could not reach the intake" in demo.stderr
