"""The SLA monitor as two real processes on a real broker, SQLite and PostgreSQL, with real
SMTP and HTTP receivers: the ladder end to end, a reassignment that restarts the clock,
and every alert exactly once per lead and stage across SIGKILL mid-fire and restarts.

The router's part of an escalation (consume `sla.escalated`, answer `lead.reassigned`)
is played by the test, which publishes the reassignment itself.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from leadflow.bus.kafka import KafkaPublisher
from leadflow.db.engine import create_engine
from leadflow.db.tables import outbox
from leadflow.events import Envelope, LeadActivity, LeadAssigned, SlaAlert, new_event
from leadflow.processing import utcnow
from leadflow.settings import Settings
from leadflow_sla.tables import sla_timers, sla_windows
from tests.fixtures.auth import AUTH
from tests.fixtures.broker import TopicReader, running_broker
from tests.fixtures.databases import migrated_database_url
from tests.fixtures.receivers import Hooks, Mailbox, smtp_server, webhook_server
from tests.fixtures.stack import CONFIG, Stack

pytestmark = pytest.mark.integration

HOOK_SECRET = "whsec_c2xhLWFsZXJ0LWhvb2stc2VjcmV0LTAwMDAwMDAw"
# Several instances need PostgreSQL (row locks); on SQLite one monitor runs, as documented.
MONITORS = {"sqlite": ("sla-monitor",), "postgres": ("sla-monitor", "sla-monitor-2")}

SLA_SECTION = """
sla:
  webhooks:
    - url: {hooks}/json
      secret_env: LEADFLOW_TEST_SLA_HOOK_SECRET
    - url: {hooks}/slack
      format: slack
  policies:
    - name: ladder
      window: 3s
      rules: [ladder]
      warn_at_percent: 50
      escalate_after: 1s
      max_escalations: 1
    - name: burst
      window: 2s
      rules: [burst]
    - name: restart
      window: 1h
      rules: [restart]
    - name: slow
      window: 1h
"""


@dataclass
class SlaStack:
    """Two SLA monitors, their broker and database, and the receivers of their alerts."""

    stack: Stack
    inbox: Mailbox
    hooks: Hooks
    monitors: tuple[str, ...]

    def url(self, name: str = "sla-monitor") -> str:
        return self.stack.services[name].url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def sla(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SlaStack]:
    """Broker, SLA monitor processes, SMTP and webhook receivers; SQLite, then PostgreSQL."""
    tmp = tmp_path_factory.mktemp(f"sla-{request.param}")
    with (
        running_broker() as bootstrap,
        smtp_server() as (smtp_port, inbox),
        webhook_server() as (
            hooks_url,
            hooks,
        ),
    ):
        config = tmp / "sla.yaml"
        config.write_text(
            CONFIG.read_text().split("\nsla:\n")[0] + SLA_SECTION.format(hooks=hooks_url)
        )
        for url in migrated_database_url(request.param, tmp):
            env = {
                "LEADFLOW_SMTP_PORT": str(smtp_port),
                "LEADFLOW_SMTP_SENDER": "alerts@leadflow.example",
                "LEADFLOW_TEST_SLA_HOOK_SECRET": HOOK_SECRET,
                "LEADFLOW_NOTIFY_POLL_S": "0.2",
                "LEADFLOW_NOTIFY_BACKOFF_S": "0.2",
                "LEADFLOW_SLA_HORIZON_S": "5",
                "LEADFLOW_SLA_GAUGE_INTERVAL_S": "0.5",
            }
            stack = Stack(bootstrap, url, tmp, config=config, env=env)
            monitors = MONITORS[request.param]
            if "sla-monitor-2" in monitors:
                stack.add_instance("sla-monitor-2", "sla-monitor")
            stack.start(*monitors)
            try:
                yield SlaStack(stack, inbox, hooks, monitors)
            finally:
                stack.stop()


@pytest.fixture
async def publisher(sla: SlaStack) -> AsyncIterator[KafkaPublisher]:
    """Publishes events as the router and the intake would."""
    publisher = KafkaPublisher(Settings(kafka_bootstrap=sla.stack.bootstrap), "test-router")
    await publisher.start()
    yield publisher
    await publisher.stop()


def assignment(
    lead_key: str,
    rep_id: str,
    rule: str,
    at: datetime,
    *,
    previous: list[str] | None = None,
) -> Envelope:
    """A `lead.assigned` (or, with previous reps, `lead.reassigned`) event."""
    assignment_id = f"as-{uuid.uuid4().hex[:12]}"
    data = LeadAssigned(
        lead_key=lead_key,
        assignment_id=assignment_id,
        rep_id=rep_id,
        rep_name=rep_id.title(),
        team="enterprise",
        rule=rule,
        tier="mql",
        reason="test",
        assigned_at=at,
        received_at=at,
        previous_rep_ids=previous or [],
    )
    type_ = "lead.reassigned" if previous else "lead.assigned"
    return new_event(type_, data, source="/test", time=at, event_id=assignment_id)


async def publish(publisher: KafkaPublisher, *events: Envelope) -> None:
    """Publish events on their topics, keyed by lead."""
    for event in events:
        topic = "leads.assigned" if event.type.startswith("lead.") else "leads.alerts"
        if isinstance(event.data, LeadActivity):
            topic = "leads.activity"
        await publisher.publish(topic, event.subject, event.to_bytes())


async def wait_for(
    reader: TopicReader,
    predicate: Callable[[Envelope], bool],
    count: int = 1,
    timeout_s: float = 30,
) -> list[Envelope]:
    """Poll until `count` events satisfy `predicate`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await reader.poll()
        found = [e for e in reader.events if predicate(e)]
        if len(found) >= count:
            return found
    raise AssertionError(
        f"timed out: wanted {count} events, saw {sum(map(predicate, reader.events))}"
    )


async def drain(reader: TopicReader, seconds: float) -> None:
    """Keep reading for a while, to catch late duplicates."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await reader.poll()


def until(
    condition: Callable[[], bool], timeout_s: float = 30, message: Callable[[], str] = str
) -> None:
    """Wait until `condition()` holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for a condition: {message()}")


def text_of(message: Message) -> str:
    """The decoded body of a plain-text email."""
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def of_type(type_: str, lead_keys: set[str]) -> Callable[[Envelope], bool]:
    """Events of one type about some leads."""

    def matches(event: Envelope) -> bool:
        return event.type == type_ and event.subject in lead_keys

    return matches


def alert_of(event: Envelope) -> SlaAlert:
    assert isinstance(event.data, SlaAlert)
    return event.data


def emails_about(inbox: Mailbox, lead_key: str) -> list[tuple[str, str]]:
    """(To, Subject) of the emails about a lead."""
    return [(m["To"], m["Subject"]) for m in inbox.snapshot() if lead_key in m["Subject"]]


def metric(sla: SlaStack, name: str) -> float:
    """A metric summed over both monitors' /metrics."""
    total = 0.0
    for monitor in sla.monitors:
        text = httpx.get(f"{sla.url(monitor)}/metrics", headers=AUTH).text
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
    return total


async def test_the_ladder_warns_alerts_escalates_and_restarts_for_the_new_rep(
    sla: SlaStack, publisher: KafkaPublisher
) -> None:
    lead_key = f"lk_ladder_{uuid.uuid4().hex[:8]}"
    first = assignment(lead_key, "ana", "ladder", utcnow())
    async with TopicReader(sla.stack.bootstrap, ["leads.alerts"]) as reader:
        await publish(publisher, first)

        def about(stage: str) -> Callable[[Envelope], bool]:
            return of_type(f"sla.{stage}", {lead_key})

        [warning] = await wait_for(reader, about("warning"))
        [breach] = await wait_for(reader, about("breached"))
        [escalation] = await wait_for(reader, about("escalated"))
        assert [alert_of(e).rep_id for e in (warning, breach, escalation)] == ["ana"] * 3
        assert alert_of(breach).manager_email == "grace@example.com"
        assert "Ana Silva (enterprise) has not contacted lead" in alert_of(breach).message
        assert "the lead is being reassigned (escalation 1 of 1)" in alert_of(escalation).message

        # The router answers the escalation with a reassignment to Ben.
        second = assignment(lead_key, "ben", "ladder", utcnow(), previous=["ana"])
        await publish(publisher, second)
        [_, ben_warning] = await wait_for(reader, about("warning"), count=2)
        [_, ben_breach] = await wait_for(reader, about("breached"), count=2)
        assert alert_of(ben_warning).rep_id == alert_of(ben_breach).rep_id == "ben"
        assert alert_of(ben_breach).assignment_id == second.data.assignment_id  # type: ignore[union-attr]
        assert alert_of(ben_breach).assigned_at > alert_of(breach).assigned_at
        await drain(reader, 2.5)
        # Exactly once per assignment and stage, and no second escalation (limit 1).
        stages = Counter(
            (alert_of(e).assignment_id, e.type) for e in reader.events if e.subject == lead_key
        )
        assert stages == Counter(
            {
                (first.data.assignment_id, "sla.warning"): 1,  # type: ignore[union-attr]
                (first.data.assignment_id, "sla.breached"): 1,  # type: ignore[union-attr]
                (first.data.assignment_id, "sla.escalated"): 1,  # type: ignore[union-attr]
                (second.data.assignment_id, "sla.warning"): 1,  # type: ignore[union-attr]
                (second.data.assignment_id, "sla.breached"): 1,  # type: ignore[union-attr]
            }
        )

    # Email: the rep is warned, the manager alerted; over real SMTP.
    until(lambda: len(emails_about(sla.inbox, lead_key)) >= 5)
    got = sorted(
        (to, re.sub(r"due in \d+ s$", "due in …", subject))
        for to, subject in emails_about(sla.inbox, lead_key)
    )
    assert got == sorted(
        [
            ("ana@example.com", f"Follow up lead {lead_key}: due in …"),
            ("grace@example.com", f"Overdue lead {lead_key}: Ana Silva missed the ladder window"),
            ("grace@example.com", f"Escalated lead {lead_key}: reassigning from Ana Silva"),
            ("ben@example.com", f"Follow up lead {lead_key}: due in …"),
            ("grace@example.com", f"Overdue lead {lead_key}: Ben Carter missed the ladder window"),
        ]
    )
    [breach_email] = [
        m for m in sla.inbox.snapshot() if m["Subject"].startswith(f"Overdue lead {lead_key}: Ana")
    ]
    assert breach_email["From"] == "alerts@leadflow.example"
    assert re.search(
        rf"Ana Silva \(enterprise\) has not contacted lead {lead_key} within the 3 s ladder "
        r"window: assigned .* UTC, now \d+ s overdue\. Routing record: "
        + re.escape(f"{sla.stack.services['router'].url}/v1/leads/{lead_key}/routing"),
        text_of(breach_email),
    )

    # Webhooks: signed JSON, and Slack's {"text"} shape, for breaches and escalations.
    def posts(path: str) -> list[dict[str, Any]]:
        return [orjson.loads(body) for _, body in sla.hooks.at(path) if lead_key in body.decode()]

    until(lambda: len(posts("/json")) == 3 and len(posts("/slack")) == 3)
    assert sorted(p["type"] for p in posts("/json")) == [
        "sla.breached",
        "sla.breached",
        "sla.escalated",
    ]
    for headers, body in sla.hooks.at("/json"):
        Webhook(HOOK_SECRET).verify(body, headers)  # raises unless signed with the secret
    assert all(set(p) == {"text"} and lead_key in p["text"] for p in posts("/slack"))

    # The managers' view: the lead is overdue with Ben until he reports the contact.
    overdue = httpx.get(
        f"{sla.url()}/v1/sla/open", params={"overdue": "true"}, headers=AUTH
    ).json()["open"]
    [mine] = [w for w in overdue if w["lead_key"] == lead_key]
    assert (mine["rep_id"], mine["last_alert"]) == ("ben", "breached")
    history = httpx.get(
        f"{sla.url(sla.monitors[-1])}/v1/sla/leads/{lead_key}", headers=AUTH
    ).json()["windows"]
    assert [(w["rep_id"], w["outcome"]) for w in history] == [("ana", "reassigned"), ("ben", None)]

    contacted = LeadActivity(
        lead_key=lead_key, activity="contacted", occurred_at=utcnow(), source="crm"
    )
    await publish(publisher, new_event("lead.contacted", contacted, source="/test", time=utcnow()))

    def closed() -> bool:
        windows = httpx.get(f"{sla.url()}/v1/sla/leads/{lead_key}", headers=AUTH).json()["windows"]
        return bool(windows[-1]["outcome"] == "contacted")

    until(closed)
    open_now = httpx.get(f"{sla.url()}/v1/sla/open", headers=AUTH).json()["open"]
    assert lead_key not in {w["lead_key"] for w in open_now}
    assert metric(sla, 'leadflow_sla_breaches_total{team="enterprise"}') >= 2
    assert (
        metric(sla, 'leadflow_notifications_sent_total{channel="email",service="sla-monitor"}') >= 5
    )
    assert metric(sla, "leadflow_sla_speed_to_lead_seconds_count") >= 1
    assert metric(sla, "leadflow_sla_timer_lateness_seconds_count") >= 5


def test_readiness_reports_the_timers(sla: SlaStack) -> None:
    body = httpx.get(f"{sla.url()}/readyz").json()

    assert body["ready"] is True
    assert body["timers_loaded"] is True


async def shift_windows(sla: SlaStack, assignment_ids: set[str], by: timedelta) -> None:
    """Move these windows and their timers `by` into the past (time passing while down)."""
    engine = create_engine(sla.stack.database_url)
    try:
        async with engine.begin() as conn:
            for table in (sla_windows, sla_timers):
                rows = await conn.execute(
                    select(table.c.id, table.c.assigned_at, table.c.due_at).where(
                        table.c.assignment_id.in_(assignment_ids)
                    )
                )
                for row_id, assigned_at, due_at in rows.all():
                    await conn.execute(
                        update(table)
                        .where(table.c.id == row_id)
                        .values(assigned_at=assigned_at - by, due_at=due_at - by)
                    )
    finally:
        await engine.dispose()


async def test_a_restart_recovers_every_open_timer(
    sla: SlaStack, publisher: KafkaPublisher
) -> None:
    run = uuid.uuid4().hex[:6]
    events = [assignment(f"lk_restart_{run}_{i}", "ben", "restart", utcnow()) for i in range(20)]
    lead_keys = {e.subject for e in events}
    await publish(publisher, *events)

    def opened() -> bool:
        rows = httpx.get(
            f"{sla.url()}/v1/sla/reps/ben", params={"limit": 1000}, headers=AUTH
        ).json()["open"]
        return len({w["lead_key"] for w in rows} & lead_keys) == 20

    until(opened, timeout_s=60)
    sla.stack.stop()  # every monitor down (the group is stable: no member was killed yet)
    down_at = utcnow()
    # An hour passes while nobody watches: the windows fall due during the outage.
    await shift_windows(sla, {e.data.assignment_id for e in events}, timedelta(hours=1, seconds=5))  # type: ignore[union-attr]
    # Timers fire from the database while the consumers still (re)join their group.
    sla.stack.start("sla-monitor", wait=False)

    recovered = of_type("sla.breached", lead_keys)
    async with TopicReader(sla.stack.bootstrap, ["leads.alerts"]) as reader:
        found = await wait_for(reader, recovered, count=20)
        await drain(reader, 1.5)

    assert {e.subject for e in found} == lead_keys
    assert len({(e.subject, e.id) for e in reader.events if recovered(e)}) == 20
    assert all(alert_of(e).fired_at > down_at for e in found)
    assert all(alert_of(e).late_by_s > 4 for e in found)
    sla.stack.wait_ready("sla-monitor", timeout_s=180)
    for monitor in sla.monitors[1:]:  # one consumer joins the group at a time
        sla.stack.start(monitor, wait=False)
        sla.stack.wait_ready(monitor, timeout_s=180)


async def alert_rows(sla: SlaStack, assignment_ids: set[str]) -> tuple[Counter[str], list[str]]:
    """Timer statuses of these assignments, and the alert event ids in the outbox."""
    engine = create_engine(sla.stack.database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(sla_timers.c.status).where(sla_timers.c.assignment_id.in_(assignment_ids))
            )
            statuses = Counter(str(s) for s in rows.scalars())
            payloads = (await conn.execute(select(outbox.c.payload))).scalars().all()
        ids = [
            e.id
            for e in map(Envelope.from_bytes, payloads)
            if isinstance(e.data, SlaAlert) and e.data.assignment_id in assignment_ids
        ]
        return statuses, ids
    finally:
        await engine.dispose()


async def test_each_alert_fires_once_across_two_monitors_sigkill_mid_fire_and_restart(
    sla: SlaStack, publisher: KafkaPublisher
) -> None:
    run = uuid.uuid4().hex[:6]
    start = utcnow()
    # 150 timers falling due one every 20 ms: the monitors are firing for 3 seconds.
    events = [
        assignment(f"lk_burst_{run}_{i}", "ana", "burst", start + timedelta(milliseconds=20 * i))
        for i in range(150)
    ]
    lead_keys = {e.subject for e in events}
    assignment_ids = {e.data.assignment_id for e in events}  # type: ignore[union-attr]
    burst = of_type("sla.breached", lead_keys)
    async with TopicReader(sla.stack.bootstrap, ["leads.alerts"]) as reader:
        await publish(publisher, *events)
        await wait_for(reader, burst, count=10)
        sla.stack.kill("sla-monitor")  # SIGKILL while the alerts are firing
        killed_at = len([e for e in reader.events if burst(e)])
        sla.stack.start("sla-monitor", wait=False)
        await wait_for(reader, burst, count=len(lead_keys), timeout_s=60)
        await drain(reader, 2.0)
    sla.stack.wait_ready("sla-monitor", timeout_s=180)

    assert killed_at < len(lead_keys), "the monitor was killed after firing everything"
    ids_per_lead = {
        key: {e.id for e in reader.events if burst(e) and e.subject == key} for key in lead_keys
    }
    assert all(len(ids) == 1 for ids in ids_per_lead.values()), "an alert fired twice"
    statuses, outbox_ids = await alert_rows(sla, assignment_ids)
    assert statuses == Counter({"fired": 150})
    assert len(outbox_ids) == len(set(outbox_ids)) == 150
    # Each manager email is queued once; a send cut by SIGKILL may be repeated with the
    # same Message-ID (receivers drop it), but no lead is emailed under two ids.
    until(lambda: len({lk for lk in lead_keys if emails_about(sla.inbox, lk)}) == 150, 60)
    message_ids: dict[str, set[str]] = {}
    for message in sla.inbox.snapshot():
        found = re.search(r"lk_burst_\w+", message["Subject"])
        if found and found.group(0) in lead_keys:
            message_ids.setdefault(found.group(0), set()).add(message["Message-ID"])
    assert all(len(ids) == 1 for ids in message_ids.values())
