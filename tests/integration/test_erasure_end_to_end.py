"""Erasing a person for real: signed webhooks -> the four service processes -> Kafka, then
`leadflow people erase PHONE`, on SQLite and on PostgreSQL.

A person is assigned under their email, then a call gives them their phone (one person,
two keys). Erased by the phone, they are gone from every service's API at both keys,
from every table of the database (their keys, email, phone, names and company), while the
funnel still counts the lead.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from leadflow.db.engine import create_engine
from tests.fixtures.auth import TEST_TOKEN, get
from tests.fixtures.keys import lead_key_for
from tests.fixtures.stack import Stack, stack_per_database
from tests.fixtures.traces import traces

pytestmark = pytest.mark.integration

FIRST, LAST, COMPANY = "Ottoline", "Brackwater", "Brackwater Pumps"


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Broker + four services pruning every half second; SQLite, then PostgreSQL."""
    env = {"LEADFLOW_RETENTION_INTERVAL_S": "0.5"}
    yield from stack_per_database(request, tmp_path_factory, "erasure", env=env)


def lead(**fields: Any) -> dict[str, Any]:
    """A demo request from a senior buyer at a large company: an MQL, routed at once."""
    activity = fields.pop("activity", "demo_request")
    body = {
        "first_name": FIRST,
        "last_name": LAST,
        "job_title": "VP Operations",
        "company": {"name": COMPANY, "size": 1500, "industry": "software"},
        "country": "US",
        **fields,
    }
    return {"event": "lead", "activity": activity, "lead": body}


def until(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting until {what}")


def person_urls(stack: Stack, key: str) -> dict[str, str]:
    """Where each service answers about the person known by `key`."""
    scoring = stack.services["scoring"].url
    router = stack.services["router"].url
    sla = stack.services["sla-monitor"].url
    return {
        "profile": f"{scoring}/v1/leads/{key}/profile",
        "routing": f"{router}/v1/leads/{key}/routing",
        "windows": f"{sla}/v1/sla/leads/{key}",
        "lifecycle": f"{sla}/v1/reports/leads/{key}",
    }


def statuses(stack: Stack, key: str) -> dict[str, int]:
    return {name: get(url, timeout=5).status_code for name, url in person_urls(stack, key).items()}


async def traces_in(database_url: str, needles: list[str]) -> dict[str, set[str]]:
    """Which tables of the stack's database hold which of `needles`."""
    engine = create_engine(database_url)
    try:
        return await traces(engine, needles)
    finally:
        await engine.dispose()


def erase_cli(stack: Stack, identity: str) -> subprocess.CompletedProcess[str]:
    """`leadflow people erase IDENTITY` against the stack's scoring, with the test token."""
    urls = ["--url", stack.services["scoring"].url, "--intake", stack.services["intake"].url]
    return subprocess.run(
        [sys.executable, "-m", "leadflow_cli", "people", "erase", identity, *urls],
        env={**stack.env, "LEADFLOW_API_TOKEN": TEST_TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def funnel(stack: Stack, source: str) -> dict[str, int]:
    url = f"{stack.services['sla-monitor'].url}/v1/reports/funnel"
    document = get(url, params={"source": source}, timeout=5).json()
    return {s["stage"]: s["leads"] for s in document["stages"]}


def test_an_erased_person_is_gone_from_every_api_and_table(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    email = f"ottoline.{tag}@brackwater.example"
    phone = f"+1415555{uuid.uuid4().int % 10_000:04d}"
    source = f"erase-{tag}"
    email_key, phone_key = lead_key_for(email), lead_key_for(phone)

    answer = stack.post("web", lead(email=email, utm={"source": source}))
    assert answer.status_code == 202, answer.text
    until(lambda: statuses(stack, email_key)["windows"] == 200, "the lead has a window")
    answer = stack.post("web", lead(email=email, phone=phone, activity="phone_call"))
    assert answer.status_code == 202, answer.text
    until(
        lambda: set(statuses(stack, phone_key).values()) == {200},
        "every service knows the person by phone",
    )
    until(lambda: funnel(stack, source).get("received") == 1, "the funnel counts the lead")
    needles = [email_key, phone_key, email, phone, FIRST, LAST, COMPANY]
    before = asyncio.run(traces_in(stack.database_url, needles))
    assert {"lead_profiles", "assignments", "sla_windows", "lead_lifecycles"} <= set(before), before

    erase = erase_cli(stack, phone)
    assert erase.returncode == 0, erase.stderr
    assert phone not in erase.stdout + erase.stderr
    assert "0 spooled webhooks forgotten" in erase.stdout

    for key in (email_key, phone_key):
        until(lambda: set(statuses(stack, key).values()) == {404}, f"{key} answers 404")  # noqa: B023
    deadline = time.monotonic() + 60
    left = asyncio.run(traces_in(stack.database_url, needles))
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = asyncio.run(traces_in(stack.database_url, needles))
    assert left == {}
    # Reports still count the lead, anonymously.
    assert funnel(stack, source)["received"] == 1

    again = erase_cli(stack, email)
    assert again.returncode == 0, again.stderr
    assert "erased before" in again.stdout
    anonymous = httpx.delete(
        f"{stack.services['scoring'].url}/v1/admin/people/{email_key}", timeout=5
    )
    assert anonymous.status_code == 401
