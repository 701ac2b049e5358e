"""One person, one window and one lifecycle, for real: signed webhooks over HTTP -> the four
service processes -> Kafka, on SQLite and on PostgreSQL.

A lead assigned under its email, then a call that gives the person their phone, then a
contact the CRM reports by phone: the window of the email's assignment closes (its timers
stop: no breach can fire) and reports count one person. Two profiles of one person each
assigned, then merged: one window and one lifecycle are left, the earlier rep's.

The follow-up window is ten minutes long here, so that no alert can race the test: what
it checks is that the timers stopped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadflow.events import Envelope, LeadAssigned, LeadMerged
from tests.fixtures.auth import AUTH
from tests.fixtures.broker import TopicReader
from tests.fixtures.keys import lead_key_for
from tests.fixtures.stack import CONFIG, Stack, stack_per_database

pytestmark = pytest.mark.integration

SLA_SECTION = """
sla:
  policies:
    - name: slow-mql
      window: 10m
      tiers: [mql]
"""


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Broker + four services with a ten-minute follow-up window; SQLite, then PostgreSQL."""
    config: Path = tmp_path_factory.mktemp("people-config") / "people.yaml"
    config.write_text(CONFIG.read_text().split("\nsla:\n")[0] + SLA_SECTION)
    yield from stack_per_database(request, tmp_path_factory, "people", config=config)


def person(tag: str) -> tuple[str, str, str]:
    """A fresh email, a fresh valid phone and a campaign source only this person comes from."""
    digits = f"{uuid.uuid4().int % 10_000:04d}"
    return f"{tag}.{uuid.uuid4().hex[:8]}@bigco.example", f"+1415555{digits}", f"e2e-{tag}"


def lead(*, email: str | None = None, phone: str | None = None, **fields: Any) -> dict[str, Any]:
    """A demo request from a senior buyer at a large company: an MQL, routed to enterprise."""
    activity = fields.pop("activity", "demo_request")
    body: dict[str, Any] = {
        "job_title": "VP Operations",
        "company": {"name": "Acme", "size": 1500, "industry": "software"},
        "country": "US",
        **fields,
    }
    if email:
        body["email"] = email
    if phone:
        body["phone"] = phone
    return {"event": "lead", "activity": activity, "lead": body}


def posted(stack: Stack, source: str, body: dict[str, Any]) -> str:
    """POST a signed body; the lead key intake answers with."""
    response = stack.post(source, body)
    assert response.status_code == 202, response.text
    return str(response.json()["lead_key"])


async def wait_for(
    reader: TopicReader, predicate: Callable[[Envelope], bool], timeout_s: float = 30.0
) -> Envelope:
    """The first event that satisfies `predicate`, polling until it comes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await reader.poll()
        found = [e for e in reader.events if predicate(e)]
        if found:
            return found[0]
    raise AssertionError("timed out waiting for an event")


def merging(key: str) -> Callable[[Envelope], bool]:
    """Scoring's `lead.merged` that gives a person `key`."""
    return lambda e: isinstance(e.data, LeadMerged) and key in e.data.identifiers


def until(
    fetch: Callable[[], httpx.Response],
    done: Callable[[dict[str, Any]], bool],
    timeout_s: float = 30,
) -> dict[str, Any]:
    """Poll an API until its answer satisfies `done`; that answer."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        response = fetch()
        if response.status_code == 200:
            last = response.json()
            if done(last):
                return dict(last)
        time.sleep(0.2)
    raise AssertionError(f"timed out; the last answer was {last}")


def sla(stack: Stack, key: str) -> Callable[[], httpx.Response]:
    return lambda: httpx.get(
        f"{stack.services['sla-monitor'].url}/v1/sla/leads/{key}", timeout=5, headers=AUTH
    )


def report(stack: Stack, key: str) -> Callable[[], httpx.Response]:
    url = f"{stack.services['sla-monitor'].url}/v1/reports/leads/{key}"
    return lambda: httpx.get(url, timeout=5, headers=AUTH)


def funnel(stack: Stack, source: str) -> dict[str, int]:
    """Leads per funnel stage among those whose first touch came from `source`."""
    url = f"{stack.services['sla-monitor'].url}/v1/reports/funnel"
    document = httpx.get(url, params={"source": source}, timeout=5, headers=AUTH).json()
    return {s["stage"]: s["leads"] for s in document["stages"]}


async def test_a_contact_reported_by_phone_closes_the_window_of_the_email_lead(
    stack: Stack,
) -> None:
    email, phone, source = person("dana")
    email_key, phone_key = lead_key_for(email), lead_key_for(phone)
    async with TopicReader(stack.bootstrap, ["leads.assigned", "leads.activity"]) as reader:
        assert posted(stack, "web", lead(email=email, utm={"source": source})) == email_key
        assigned = await wait_for(
            reader, lambda e: e.type == "lead.assigned" and e.subject == email_key
        )
        # The person calls: the call carries the phone next to the email.
        posted(stack, "web", lead(email=email, phone=phone, activity="phone_call"))
        merge = await wait_for(reader, merging(phone_key))
        assert isinstance(merge.data, LeadMerged)
        assert merge.data.survivor == email_key

        # The CRM reports the first contact by phone only.
        contact = {
            "event": "contacted",
            "phone": phone,
            "occurred_at": assigned.time.isoformat(),
        }
        assert posted(stack, "crm", contact) == phone_key

        history = until(
            sla(stack, phone_key), lambda h: h["windows"][0]["status"] == "closed", timeout_s=60
        )
    assert isinstance(assigned.data, LeadAssigned)
    [window] = history["windows"]
    assert history["lead_key"] == email_key
    assert (window["assignment_id"], window["outcome"]) == (
        assigned.data.assignment_id,
        "contacted",
    )
    # Every timer stopped: no warning, breach or escalation can fire for this lead.
    assert {t["status"] for t in window["timers"]} == {"stopped"}
    assert until(sla(stack, email_key), lambda h: True) == history

    lifecycle = until(
        report(stack, phone_key), lambda lc: lc["contacts"] == 1 and lc["touches"] == 2
    )
    assert (lifecycle["lead_key"], lifecycle["first_source"], lifecycle["rep_id"]) == (
        email_key,
        source,
        assigned.data.rep_id,
    )
    assert report(stack, email_key)().json() == lifecycle
    stages = funnel(stack, source)
    assert (stages["received"], stages["assigned"], stages["contacted"]) == (1, 1, 1)


async def test_two_assigned_profiles_of_one_person_leave_one_window_and_one_lifecycle(
    stack: Stack,
) -> None:
    email, phone, source = person("lee")
    email_key, phone_key = lead_key_for(email), lead_key_for(phone)
    async with TopicReader(stack.bootstrap, ["leads.assigned", "leads.activity"]) as reader:
        # First a call from the phone, then a form by email: two people as far as anyone knows.
        posted(stack, "web", lead(phone=phone, utm={"source": source}))
        by_phone = await wait_for(
            reader, lambda e: e.type == "lead.assigned" and e.subject == phone_key
        )
        posted(stack, "web", lead(email=email, utm={"source": f"{source}-form"}))
        by_email = await wait_for(
            reader, lambda e: e.type == "lead.assigned" and e.subject == email_key
        )
        # A form with both: one person, the phone's profile qualified first and survives.
        posted(stack, "web", lead(email=email, phone=phone, activity="content_download"))
        merge = await wait_for(reader, merging(phone_key))
    assert isinstance(merge.data, LeadMerged)
    assert (merge.data.survivor, merge.data.absorbed) == (phone_key, [email_key])
    assert isinstance(by_phone.data, LeadAssigned)
    assert isinstance(by_email.data, LeadAssigned)

    history = until(sla(stack, email_key), lambda h: len(h["windows"]) == 2)
    assert history["lead_key"] == phone_key
    ends = {w["assignment_id"]: (w["status"], w["outcome"]) for w in history["windows"]}
    assert ends == {
        by_phone.data.assignment_id: ("open", None),
        by_email.data.assignment_id: ("closed", "merged"),
    }
    merged_away = next(w for w in history["windows"] if w["outcome"] == "merged")
    assert {t["status"] for t in merged_away["timers"]} == {"stopped"}

    # The CRM reports the contact by the email: the kept window closes.
    contact = {"event": "contacted", "email": email, "occurred_at": by_email.time.isoformat()}
    posted(stack, "crm", contact)
    history = until(
        sla(stack, phone_key), lambda h: all(w["status"] == "closed" for w in h["windows"])
    )
    kept = next(w for w in history["windows"] if w["assignment_id"] == by_phone.data.assignment_id)
    assert kept["outcome"] == "contacted"
    assert {t["status"] for w in history["windows"] for t in w["timers"]} == {"stopped"}

    lifecycle = until(
        report(stack, email_key), lambda lc: lc["contacts"] == 1 and lc["touches"] == 3
    )
    assert (lifecycle["lead_key"], lifecycle["first_source"], lifecycle["rep_id"]) == (
        phone_key,
        source,
        by_phone.data.rep_id,
    )
    stages = funnel(stack, source)
    assert (stages["received"], stages["assigned"], stages["contacted"]) == (1, 1, 1)
    # The email's own first touch counts for nobody any more.
    assert funnel(stack, f"{source}-form")["received"] == 0
