"""Two router processes on a four-partition topic, a real broker, SQLite and PostgreSQL.

Shows, with real processes: no round-robin turn is handed out twice in a row, caps are
never exceeded, no lead is assigned twice; escalations reassign through the broker;
notifications reach a real SMTP server and signed webhooks a real HTTP receiver; the admin
API changes routing at run time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from leadflow.aliases import assignment_order
from leadflow.db.engine import create_engine
from leadflow.events import (
    Company,
    Envelope,
    Lead,
    LeadActivity,
    LeadAssigned,
    LeadMerged,
    SlaAlert,
    new_event,
)
from leadflow_router.tables import assignments
from tests.fixtures.auth import AUTH
from tests.fixtures.broker import TopicReader, running_broker
from tests.fixtures.databases import migrated_database_url
from tests.fixtures.locks import holding_pool, waiting_for_pool
from tests.fixtures.receivers import Hooks, Mailbox, smtp_server, webhook_server
from tests.fixtures.routing import scored
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration

ROUTING_YAML = Path(__file__).parents[1] / "fixtures" / "routing.yaml"
ADMIN_TOKEN = "t" * 32
CRM_SECRET = "whsec_" + base64.b64encode(b"crm-secret-for-routing-tests-0000").decode()
REP_SECRET = "whsec_" + base64.b64encode(b"rep-secret-for-routing-tests-0000").decode()
ENTERPRISE = ["ana", "ben", "chloe"]


@dataclass
class Routers:
    """Two router processes and the receivers their notifications go to."""

    stack: Stack
    mailbox: Mailbox
    hooks: Hooks

    def url(self, name: str = "router") -> str:
        return self.stack.services[name].url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def routers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Routers]:
    tmp = tmp_path_factory.mktemp(f"routers-{request.param}")
    with smtp_server() as (smtp_port, mailbox), webhook_server() as (hooks_url, hooks):
        config = yaml.safe_load(ROUTING_YAML.read_text())
        config["routing"]["notify"] = {"crm_webhook": f"{hooks_url}/crm"}
        for rep in config["reps"]:
            if rep["id"] == "felix":
                rep["webhook"] = f"{hooks_url}/reps/felix"
        path = tmp / "routing.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True))
        env = {
            "LEADFLOW_TOPIC_PARTITIONS": "4",
            "LEADFLOW_SMTP_PORT": str(smtp_port),
            "LEADFLOW_SMTP_SENDER": "routing@leadflow.example",
            "LEADFLOW_NOTIFY_POLL_S": "0.2",
            "LEADFLOW_ADMIN_TOKEN": f"ops:{ADMIN_TOKEN}",
            "LEADFLOW_ROUTER_CRM_WEBHOOK_SECRET": CRM_SECRET,
            "LEADFLOW_REP_FELIX_WEBHOOK_SECRET": REP_SECRET,
            "LEADFLOW_ROUTER_QUEUE_RETRY_S": "1",
        }
        with running_broker() as bootstrap:
            for url in migrated_database_url(request.param, tmp):
                stack = Stack(bootstrap, url, tmp, config=path, env=env)
                stack.add("router-2", "router")
                stack.start("router", "router-2")
                time.sleep(3)  # let the consumer group settle: both routers own partitions
                try:
                    yield Routers(stack, mailbox, hooks)
                finally:
                    stack.stop()


async def publish(bootstrap: str, topic: str, events: list[Envelope]) -> None:
    """Publish events keyed by lead key (so they spread over the partitions)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(topic, event.to_bytes(), key=event.subject.encode())
    finally:
        await producer.stop()


def scored_event(lead_key: str, lead: Lead) -> Envelope:
    now = datetime.now(UTC)
    return new_event(
        "lead.scored", scored(lead, lead_key=lead_key, at=now), source="/test", time=now
    )


async def wait_for(
    reader: TopicReader,
    predicate: Callable[[Envelope], bool],
    count: int = 1,
    timeout_s: float = 30,
) -> list[Envelope]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await reader.poll()
        found = [e for e in reader.events if predicate(e)]
        if len(found) >= count:
            return found
    raise AssertionError(f"timed out waiting for {count} events")


async def drain(reader: TopicReader, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await reader.poll()


async def assignment_rows(url: str, lead_keys: list[str]) -> list[dict[str, object]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(assignments).where(assignments.c.lead_key.in_(lead_keys))
            )
            return [dict(r._mapping) for r in rows]
    finally:
        await engine.dispose()


def consumed(url: str) -> float:
    """Scored events a router process consumed (from its /metrics)."""
    text = httpx.get(f"{url}/metrics", timeout=5, headers=AUTH).text
    for line in text.splitlines():
        if line.startswith('leadflow_events_consumed_total{service="router",type="lead.scored"}'):
            return float(line.split()[-1])
    return 0.0


async def test_two_routers_never_repeat_a_turn_exceed_a_cap_or_assign_twice(
    routers: Routers,
) -> None:
    run = uuid.uuid4().hex[:6]
    big = [f"lk_big_{run}_{i}" for i in range(30)]
    small = [f"lk_small_{run}_{i}" for i in range(15)]
    events = [scored_event(k, Lead(company=Company(size=5000))) for k in big]
    events += [scored_event(k, Lead(company=Company(size=10))) for k in small]
    # Every event twice (a redelivery), and a second qualifying score for some leads.
    again = [scored_event(k, Lead(company=Company(size=5000))) for k in big[:10]]
    await publish(routers.stack.bootstrap, "leads.scored", events + events + again)

    keys = set(big + small)
    async with TopicReader(routers.stack.bootstrap, ["leads.assigned"]) as reader:
        await wait_for(reader, lambda e: e.subject in keys, count=len(keys), timeout_s=60)
        await drain(reader, 3.0)
    # One event per lead. (On SQLite two relays may both publish a row before either marks it
    # sent: the same event id twice, which every consumer's inbox drops.)
    mine = list({e.id: e for e in reader.events if e.subject in keys}.values())

    assert Counter(e.subject for e in mine) == dict.fromkeys(keys, 1)
    types = Counter((e.subject in small, e.type) for e in mine)
    assert types == {
        (False, "lead.assigned"): 30,
        (True, "lead.assigned"): 10,
        (True, "lead.unassigned"): 5,
    }

    rows = await assignment_rows(routers.stack.database_url, sorted(keys))
    assert Counter(r["lead_key"] for r in rows) == dict.fromkeys(keys, 1)
    enterprise = sorted((r for r in rows if r["team"] == "enterprise"), key=lambda r: r["turn"])  # type: ignore[arg-type,return-value]
    turns = [int(r["turn"]) for r in enterprise]  # type: ignore[call-overload]
    assert turns == list(range(turns[0], turns[0] + 30))
    reps = [str(r["rep_id"]) for r in enterprise]
    for previous, following in itertools.pairwise(reps):
        assert ENTERPRISE.index(following) == (ENTERPRISE.index(previous) + 1) % 3
    per_rep = Counter(r["rep_id"] for r in rows if r["team"] == "smb" and r["status"] == "assigned")
    assert per_rep == {"dev": 5, "emma": 5}

    assert consumed(routers.url("router")) > 0
    assert consumed(routers.url("router-2")) > 0


async def decided(url: str, lead_keys: list[str], timeout_s: float = 60) -> list[dict[str, object]]:
    """The assignment rows of these leads, once every one of them has one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = await assignment_rows(url, lead_keys)
        if {r["lead_key"] for r in rows} == set(lead_keys):
            return rows
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for decisions on {len(lead_keys)} leads")


async def test_two_routers_route_to_different_teams_at_once(routers: Routers) -> None:
    """Leads for smb are routed while enterprise's pool is held (on PostgreSQL by this test,
    as a router in the middle of an enterprise batch holds it); the enterprise leads wait
    for it, then take their turns in order. (SQLite serializes every writer: there both
    teams are routed, one transaction at a time.)"""
    url = routers.stack.database_url
    postgres = url.startswith("postgresql")
    run = uuid.uuid4().hex[:6]
    small = [f"lk_team_smb_{run}_{i}" for i in range(12)]
    big = [f"lk_team_ent_{run}_{i}" for i in range(12)]
    before = {name: consumed(routers.url(name)) for name in ("router", "router-2")}
    bootstrap = routers.stack.bootstrap
    to_enterprise = [scored_event(k, Lead(company=Company(size=5000))) for k in big]

    held = holding_pool(url, "team:enterprise") if postgres else contextlib.nullcontext()
    async with held:
        await publish(
            bootstrap,
            "leads.scored",
            [scored_event(k, Lead(company=Company(size=10))) for k in small],
        )
        assert {r["team"] for r in await decided(url, small)} == {"smb"}
        if postgres:
            await publish(bootstrap, "leads.scored", to_enterprise)
            await waiting_for_pool(url, "team:enterprise")
            assert await assignment_rows(url, big) == []
    if not postgres:
        await publish(bootstrap, "leads.scored", to_enterprise)

    rows = await decided(url, big + small)
    assert Counter(r["lead_key"] for r in rows) == dict.fromkeys(big + small, 1)
    enterprise = sorted((r for r in rows if r["lead_key"] in big), key=lambda r: int(r["turn"]))  # type: ignore[call-overload]
    turns = [int(r["turn"]) for r in enterprise]  # type: ignore[call-overload]
    assert turns == list(range(turns[0], turns[0] + len(big)))
    reps = [str(r["rep_id"]) for r in enterprise]
    for previous, following in itertools.pairwise(reps):
        assert ENTERPRISE.index(following) == (ENTERPRISE.index(previous) + 1) % 3
    # Both routers did part of the work.
    assert all(consumed(routers.url(name)) > count for name, count in before.items())


def escalation(assigned: LeadAssigned) -> Envelope:
    now = datetime.now(UTC)
    alert = SlaAlert(
        lead_key=assigned.lead_key,
        assignment_id=assigned.assignment_id,
        stage="escalated",
        policy="hot",
        rep_id=assigned.rep_id,
        rep_name=assigned.rep_name,
        team=assigned.team,
        manager_email="grace@example.com",
        assigned_at=assigned.assigned_at,
        due_at=assigned.assigned_at + timedelta(minutes=5),
        fired_at=now,
        late_by_s=1.0,
        message="not contacted in time",
    )
    return new_event("sla.escalated", alert, source="/leadflow/sla-monitor", time=now)


async def test_an_escalation_reassigns_through_the_broker_once(routers: Routers) -> None:
    lead_key = f"lk_esc_{uuid.uuid4().hex[:8]}"
    await publish(
        routers.stack.bootstrap,
        "leads.scored",
        [scored_event(lead_key, Lead(company=Company(size=5000)))],
    )
    async with TopicReader(routers.stack.bootstrap, ["leads.assigned"]) as reader:
        [first] = await wait_for(reader, lambda e: e.subject == lead_key)
        assert isinstance(first.data, LeadAssigned)
        escalated = escalation(first.data)
        await publish(routers.stack.bootstrap, "leads.alerts", [escalated, escalated])
        reassigned = await wait_for(
            reader, lambda e: e.subject == lead_key and e.type == "lead.reassigned"
        )
        await drain(reader, 2.0)
    # Two SQLite relays may both publish a row (never on PostgreSQL, which locks it);
    # a copy carries the same event id, which every consumer's inbox drops.
    assert len({e.id for e in reassigned}) == 1
    second = reassigned[0]

    assert isinstance(second.data, LeadAssigned)
    assert second.data.previous_rep_ids == [first.data.rep_id]
    assert second.data.rep_id != first.data.rep_id
    assert len({e.id for e in reader.events if e.subject == lead_key}) == 2
    why = httpx.get(
        f"{routers.url('router-2')}/v1/leads/{lead_key}/routing", timeout=5, headers=AUTH
    ).json()
    assert [d["kind"] for d in why["decisions"]] == ["route", "reassign"]
    assert why["current"]["rep_id"] == second.data.rep_id
    assert [h["close_reason"] for h in why["history"]] == ["escalated", None]


async def test_two_profiles_routed_apart_merge_into_one_assignment_closed_by_phone(
    routers: Routers,
) -> None:
    run = uuid.uuid4().hex[:8]
    email_key, phone_key = f"lk_email_{run}", f"lk_phone_{run}"
    big = Lead(company=Company(size=5000))
    await publish(
        routers.stack.bootstrap,
        "leads.scored",
        [scored_event(email_key, big), scored_event(phone_key, big)],
    )
    url = routers.stack.database_url
    rows = await decided(url, [email_key, phone_key])
    # The router keeps the one it decided first (both may come from one batch, one instant).
    first = min(
        rows,
        key=lambda r: assignment_order(
            cast(datetime, r["assigned_at"]),
            cast("int | None", r["batch_position"]),
            str(r["assignment_id"]),
        ),
    )
    now = datetime.now(UTC)
    merge = LeadMerged(
        survivor=email_key, absorbed=[phone_key], identifiers=[email_key, phone_key], merged_at=now
    )
    await publish(
        routers.stack.bootstrap,
        "leads.activity",
        [new_event("lead.merged", merge, source="/test", time=now)],
    )

    async def moved() -> list[dict[str, object]]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = await assignment_rows(url, [email_key, phone_key])
            if {r["lead_key"] for r in found} == {email_key}:
                return found
            await asyncio.sleep(0.2)
        raise AssertionError("the merge did not move the phone's assignment")

    merged_rows = await moved()
    assert sorted((r["assignment_id"], r["close_reason"]) for r in merged_rows) == sorted(
        (r["assignment_id"], None if r["assignment_id"] == first["assignment_id"] else "merged")
        for r in rows
    )
    # The CRM reports the deal by the phone; it closes the assignment made under the email.
    won = LeadActivity(
        lead_key=phone_key,
        identifiers=[phone_key],
        activity="won",
        occurred_at=now,
        source="crm",
        amount=1000,
    )
    await publish(
        routers.stack.bootstrap,
        "leads.activity",
        [new_event("lead.won", won, source="/test", time=now)],
    )

    def closed() -> bool:
        why = httpx.get(
            f"{routers.url('router-2')}/v1/leads/{phone_key}/routing", timeout=5, headers=AUTH
        )
        return why.status_code == 200 and why.json()["status"] == "closed"

    await eventually(closed, timeout_s=30)
    why = httpx.get(
        f"{routers.url('router')}/v1/leads/{phone_key}/routing", timeout=5, headers=AUTH
    ).json()
    assert why["lead_key"] == email_key
    assert why["current"]["assignment_id"] == first["assignment_id"]
    assert sorted(h["close_reason"] for h in why["history"]) == ["merged", "won"]
    # Both reps were told (the one whose assignment closed, and the one who keeps the lead).
    kept_rep, other = first["rep_id"], next(r["rep_id"] for r in rows if r is not first)
    await eventually(
        lambda: all(
            any(
                "Lead merged" in str(m["Subject"]) and email_key in str(m.get_payload())
                for m in routers.mailbox.to(f"{rep}@example.com")
            )
            for rep in (kept_rep, other)
        )
    )


async def eventually(check: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("timed out")


async def test_account_lead_notifies_owner_manager_and_crm_signed(routers: Routers) -> None:
    lead_key = f"lk_acme_{uuid.uuid4().hex[:8]}"
    lead = Lead(
        email=f"{lead_key}@acme.example", first_name="Jo", company=Company(name="Acme", size=50)
    )
    await publish(routers.stack.bootstrap, "leads.scored", [scored_event(lead_key, lead)])

    def crm_deliveries() -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in routers.hooks.at("/crm") if lead_key.encode() in b]

    def rep_deliveries() -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in routers.hooks.at("/reps/felix") if lead_key.encode() in b]

    def emails(to: str) -> list[str]:
        return [m["Message-ID"] for m in routers.mailbox.to(to) if lead_key in str(m.get_payload())]

    await eventually(
        lambda: (
            bool(crm_deliveries() and rep_deliveries() and emails("felix@example.com"))
            and bool(emails("ivy@example.com"))
        )
    )
    await asyncio.sleep(1.0)  # anything duplicated would show up by now

    headers, body = crm_deliveries()[0]
    payload = Webhook(CRM_SECRET).verify(body, headers)
    assert payload["type"] == "lead.assigned"
    assert payload["assignment"]["rep_id"] == "felix"
    assert payload["assignment"]["rule"] == "account-owner"
    assert payload["lead"]["email"] == f"{lead_key}@acme.example"
    rep_headers, rep_body = rep_deliveries()[0]
    assert Webhook(REP_SECRET).verify(rep_body, rep_headers)["assignment"]["rep_id"] == "felix"
    # Each notification is delivered once; a resend would carry the same id.
    assert len({h["webhook-id"] for h, _ in crm_deliveries()}) == 1
    assert len(set(emails("felix@example.com"))) == 1
    [manager] = [
        m for m in routers.mailbox.to("ivy@example.com") if lead_key in str(m.get_payload())
    ][:1]
    assert manager["Subject"] == "Priority account Acme: new lead assigned to Felix Wagner"


async def test_admin_marks_the_owner_out_of_office_and_routing_follows(
    routers: Routers,
) -> None:
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    now = datetime.now(UTC)
    created = httpx.post(
        f"{routers.url()}/v1/admin/reps/felix/out-of-office",
        json={"start": now.isoformat(), "end": (now + timedelta(hours=1)).isoformat()},
        headers=auth,
        timeout=5,
    )
    assert created.status_code == 201, created.text
    lead_key = f"lk_ooo_{uuid.uuid4().hex[:8]}"
    lead = Lead(email=f"{lead_key}@acme.example", company=Company(name="Acme", size=5000))
    await publish(routers.stack.bootstrap, "leads.scored", [scored_event(lead_key, lead)])

    async with TopicReader(routers.stack.bootstrap, ["leads.assigned"]) as reader:
        [assigned] = await wait_for(reader, lambda e: e.subject == lead_key)
    assert isinstance(assigned.data, LeadAssigned)
    assert assigned.data.rule == "enterprise-size"
    why = httpx.get(
        f"{routers.url('router-2')}/v1/leads/{lead_key}/routing", timeout=5, headers=AUTH
    ).json()
    [decision] = why["decisions"]
    assert decision["account"] == "Acme"
    assert decision["skipped_before"][0]["rep_id"] == "felix"
    assert decision["skipped_before"][0]["why"].startswith("out of office until ")

    audit = httpx.get(f"{routers.url('router-2')}/v1/admin/audit", headers=auth, timeout=5)
    assert [(c["actor"], c["action"]) for c in audit.json()["changes"]][:1] == [
        ("ops", "rep.out_of_office.add")
    ]
    cancelled = httpx.delete(
        f"{routers.url()}/v1/admin/reps/felix/out-of-office/{created.json()['id']}",
        headers=auth,
        timeout=5,
    )
    assert cancelled.status_code == 204


def test_a_production_router_refuses_to_start_without_api_tokens() -> None:
    env = {
        **os.environ,
        "LEADFLOW_ENV": "production",
        "LEADFLOW_CONFIG": str(ROUTING_YAML),
        "LEADFLOW_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
        "LEADFLOW_SOURCE_WEB_SECRET": "whsec_" + base64.b64encode(b"p" * 32).decode(),
        "LEADFLOW_KEY_SECRET": base64.b64encode(b"k" * 48).decode(),
    }
    for name in ("LEADFLOW_ADMIN_TOKEN", "LEADFLOW_TOKENS", "LEADFLOW_TOKENS_FILE"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "leadflow_cli", "router", "--port", "1"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert b"LEADFLOW_TOKENS is not set" in result.stderr
