"""Notifications over real SMTP and real HTTP: sent once, retried with backoff, given up."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from leadflow.db.engine import session_factory
from leadflow.db.tables import notifications
from leadflow.notifications import (
    EmailSender,
    Notification,
    NotificationDispatcher,
    WebhookSender,
    pending,
    queue,
)
from leadflow.settings import Settings
from tests.fixtures.broker import free_port

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SECRET = "whsec_bm90aWZpY2F0aW9uLXNlY3JldC0wMDAwMDAwMDA="


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


class Receiver(BaseHTTPRequestHandler):
    """Answers 503 to the first `failures` posts, then 204; keeps what it received."""

    failures = 0
    received: list[tuple[dict[str, str], bytes]] = []  # noqa: RUF012

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append((dict(self.headers), body))
        if type(self).failures > 0:
            type(self).failures -= 1
            self.send_response(503)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("TestReceiver", (Receiver,), {"failures": 0, "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", handler
    server.shutdown()


def alert(channel: str, target: str, key: str = "sla:a1:breached") -> Notification:
    return Notification(
        channel=channel,  # type: ignore[arg-type]
        target=target,
        subject="Lead lk_1 is overdue",
        body="Ana has not contacted lead lk_1 within 5 min.",
        dedupe_key=f"{key}:{channel}:{target}",
        payload={"lead_key": "lk_1", "stage": "breached"},
    )


async def test_an_email_is_queued_once_and_delivered_over_smtp(
    engine: AsyncEngine, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    settings = Settings(smtp_port=port, smtp_sender="alerts@leadflow.example")
    async with session_factory(engine)() as session, session.begin():
        assert await queue(session, "sla-monitor", alert("email", "grace@example.com"), NOW)
        assert not await queue(session, "sla-monitor", alert("email", "grace@example.com"), NOW)

    dispatcher = NotificationDispatcher(
        engine, settings, "sla-monitor", {"email": EmailSender(settings)}
    )
    assert await dispatcher.dispatch_once(NOW) == 1
    assert await dispatcher.dispatch_once(NOW) == 0

    [message] = inbox.messages
    assert message["To"] == "grace@example.com"
    assert message["From"] == "alerts@leadflow.example"
    assert message["Subject"] == "Lead lk_1 is overdue"
    assert message["Message-ID"].endswith("@leadflow.example>")
    assert "within 5 min" in message.get_payload()


async def test_a_failing_webhook_is_retried_with_backoff_and_signed(
    engine: AsyncEngine, receiver: tuple[str, type[Receiver]]
) -> None:
    url, handler = receiver
    handler.failures = 2
    settings = Settings(notify_backoff_s=10, notify_max_attempts=5)
    async with session_factory(engine)() as session, session.begin():
        await queue(session, "router", alert("webhook", url), NOW)

    async with httpx.AsyncClient() as client:
        dispatcher = NotificationDispatcher(
            engine, settings, "router", {"webhook": WebhookSender(client, {url: SECRET})}
        )
        assert await dispatcher.dispatch_once(NOW) == 0  # 503: next try in 10 s
        assert await dispatcher.dispatch_once(NOW + timedelta(seconds=5)) == 0  # not due yet
        assert await dispatcher.dispatch_once(NOW + timedelta(seconds=10)) == 0  # 503: 20 s
        assert await dispatcher.dispatch_once(NOW + timedelta(seconds=25)) == 0  # not due
        assert await dispatcher.dispatch_once(NOW + timedelta(seconds=30)) == 1

    assert len(handler.received) == 3
    headers, body = handler.received[-1]
    assert json.loads(body) == {"lead_key": "lk_1", "stage": "breached"}
    assert Webhook(SECRET).verify(body, headers) == {"lead_key": "lk_1", "stage": "breached"}
    assert len({h["webhook-id"] for h, _ in handler.received}) == 1
    assert await pending(engine, "router") == []


async def test_a_slack_webhook_gets_text_and_gives_up_after_max_attempts(
    engine: AsyncEngine, receiver: tuple[str, type[Receiver]]
) -> None:
    url, handler = receiver
    handler.failures = 99
    settings = Settings(notify_backoff_s=1, notify_max_attempts=3)
    async with session_factory(engine)() as session, session.begin():
        await queue(session, "sla-monitor", alert("slack", url), NOW)

    async with httpx.AsyncClient() as client:
        dispatcher = NotificationDispatcher(
            engine, settings, "sla-monitor", {"slack": WebhookSender(client)}
        )
        for minute in range(5):
            await dispatcher.dispatch_once(NOW + timedelta(minutes=minute))

    assert len(handler.received) == 3
    assert json.loads(handler.received[0][1]) == {
        "text": "Ana has not contacted lead lk_1 within 5 min."
    }
    async with engine.connect() as conn:
        row = (await conn.execute(select(notifications))).one()
    assert row.attempts == 3
    assert row.failed_at is not None
    assert "503" in row.last_error
    assert await pending(engine, "sla-monitor") == []


async def test_an_email_whose_subject_has_line_breaks_is_delivered_on_one_line(
    engine: AsyncEngine, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    settings = Settings(smtp_port=port, smtp_sender="alerts@leadflow.example")
    company = "Acme\r\nBcc: everyone@example.com\u2028Ltd\x1b"
    async with session_factory(engine)() as session, session.begin():
        # Stored as it came, like rows queued before subjects were cleaned or by another writer.
        await session.execute(
            insert(notifications).values(
                producer="router",
                channel="email",
                target="grace@example.com",
                dedupe_key="router:e1:rep:email",
                subject=f"New lead for you: {company}",
                body="A HOT lead is for you.",
                payload={},
                created_at=NOW,
                attempts=0,
                next_attempt_at=NOW,
            )
        )
        # A NUL, which PostgreSQL cannot store in text, is dropped when queued.
        note = Notification(
            "email",
            "grace@example.com",
            f"Lead reassigned: {company}\x00",
            f"Company: {company}\x00",
            "router:e2",
            {},
        )
        assert await queue(session, "router", note, NOW)

    dispatcher = NotificationDispatcher(
        engine, settings, "router", {"email": EmailSender(settings)}
    )
    assert await dispatcher.dispatch_once(NOW) == 2

    assert sorted(m["Subject"] for m in inbox.messages) == [
        "Lead reassigned: Acme Bcc: everyone@example.com Ltd",
        "New lead for you: Acme Bcc: everyone@example.com Ltd",
    ]
    assert [m["Bcc"] for m in inbox.messages] == [None, None]
    assert any("Company: Acme" in m.get_payload() for m in inbox.messages)
    assert await pending(engine, "router") == []
