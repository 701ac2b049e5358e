"""A list import through the bulk lane while a hot lead comes in live, for real: the
`leadflow import` command posting to four service processes over a real broker."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.auth import AUTH
from tests.fixtures.broker import TopicReader
from tests.fixtures.keys import lead_key_for
from tests.fixtures.stack import Stack, lead_body, stack_per_database

pytestmark = pytest.mark.integration

LEADS = 40


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Broker + four services on SQLite, then on PostgreSQL."""
    yield from stack_per_database(request, tmp_path_factory, "bulk")


def lead_file(path: Path, emails: list[str]) -> Path:
    """A CSV of senior demo requests (MQLs in the test config), then one bad row."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["email", "job_title", "company.name", "company.size", "activity"])
        for email in emails:
            writer.writerow([email, "VP Operations", "Acme", "1500", "demo_request"])
        writer.writerow(["not-an-email", "VP Operations", "Acme", "1500", "demo_request"])
    return path


def run_import(
    stack: Stack, path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`leadflow import` against the stack's intake."""
    url = stack.services["intake"].url
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "leadflow_cli",
            "import",
            str(path),
            "--source",
            "import",
            "--url",
            url,
        ],
        env={**stack.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def assigned_counts(stack: Stack, keys: set[str], settle_s: float) -> Counter[str]:
    """`lead.assigned` events per lead key, read until all keys were seen and `settle_s`
    more passed (to catch late duplicates); gives up after 60 s."""
    counts: Counter[str] = Counter()
    async with TopicReader(stack.bootstrap, ["leads.assigned"]) as reader:
        deadline = time.monotonic() + 60
        settled: float | None = None
        while time.monotonic() < deadline and (settled is None or time.monotonic() < settled):
            for event in await reader.poll():
                if event.type == "lead.assigned" and event.subject in keys:
                    counts[event.subject] += 1
            if settled is None and set(counts) == keys:
                settled = time.monotonic() + settle_s
    return counts


def reported(stack: Stack, lead_key: str) -> dict[str, Any]:
    """The lead's lifecycle in the reports, once it has a tier and an assignment."""
    url = f"{stack.services['sla-monitor'].url}/v1/reports/leads/{lead_key}"
    deadline = time.monotonic() + 30
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(url, headers=AUTH)
        if response.status_code == 200:
            last = response.json()
            if last["tier"] is not None and last["assigned_at"] is not None:
                return last
        time.sleep(0.2)
    raise AssertionError(f"the reports never had {lead_key} scored and assigned: {last}")


async def subjects_on(stack: Stack, topic: str, seconds: float) -> set[str]:
    """The subjects of every event on a topic (read from the beginning for a while)."""
    async with TopicReader(stack.bootstrap, [topic]) as reader:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await reader.poll()
    return {e.subject for e in reader.events}


async def test_import_through_the_bulk_lane_beside_a_hot_lead(stack: Stack, tmp_path: Path) -> None:
    emails = [f"listed.{n}@bulkco.example" for n in range(LEADS)]
    path = lead_file(tmp_path / "list.csv", emails)
    bulk_keys = {lead_key_for(e) for e in emails}
    hot_email = "hot.demo@bigco.example"

    importing = asyncio.create_task(asyncio.to_thread(run_import, stack, path))
    await asyncio.sleep(0.2)
    hot = await asyncio.to_thread(stack.post, "web", lead_body(hot_email))
    done = await importing

    assert hot.status_code == 202, hot.text
    hot_key = hot.json()["lead_key"]
    assert done.returncode == 1, done.stderr
    assert f"{LEADS} accepted, 1 refused" in done.stdout
    assert f"row {LEADS + 1}: The body is not a valid lead or activity." in done.stdout
    assert "lead.email" in done.stdout

    counts = await assigned_counts(stack, bulk_keys | {hot_key}, settle_s=2.0)
    assert counts == Counter(dict.fromkeys(bulk_keys | {hot_key}, 1))
    # Reports know imported leads like live ones: received, scored, assigned.
    for key in sorted(bulk_keys)[:3]:
        lifecycle = await asyncio.to_thread(reported, stack, key)
        assert lifecycle["tier"] == "mql"
    # The list went through the bulk lane, the hot lead through the live one.
    assert bulk_keys <= await subjects_on(stack, "leads.scored.bulk", 1.0)
    live = await subjects_on(stack, "leads.scored", 1.0)
    assert hot_key in live
    assert not bulk_keys & live


async def test_importing_the_same_file_again_assigns_nobody_twice(
    stack: Stack, tmp_path: Path
) -> None:
    emails = [f"again.{n}@bulkco.example" for n in range(10)]
    path = lead_file(tmp_path / "again.csv", emails)
    keys = {lead_key_for(e) for e in emails}

    first = await asyncio.to_thread(run_import, stack, path)
    second = await asyncio.to_thread(run_import, stack, path)

    assert "10 accepted, 1 refused" in first.stdout
    assert "10 accepted, 1 refused" in second.stdout
    counts = await assigned_counts(stack, keys, settle_s=3.0)
    assert counts == Counter(dict.fromkeys(keys, 1))


async def test_an_import_signed_with_the_wrong_secret_stops_at_once(
    stack: Stack, tmp_path: Path
) -> None:
    path = lead_file(tmp_path / "unsigned.csv", ["wrong.secret@bulkco.example"])

    done = await asyncio.to_thread(
        run_import, stack, path, {"LEADFLOW_SOURCE_IMPORT_SECRET": "whsec_" + "QUJD" * 8}
    )

    assert done.returncode == 2
    assert "The intake refused source 'import':" in done.stderr
    assert "accepted" not in done.stdout
