"""Delivering one notification: email over SMTP, JSON webhooks (Slack-compatible or signed).

Email headers are built from text that came from outside (a company name, a lead key):
`header_text` turns every control character and line break into a space, so a CR/LF in a
stored subject can neither split a header nor make the message impossible to build.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal, Protocol

import aiosmtplib
import httpx

from leadflow import tracing
from leadflow.settings import Settings
from leadflow.webhooks import sign

Channel = Literal["email", "webhook", "slack"]

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Notification:
    """One message to one recipient on one channel."""

    channel: Channel
    target: str
    subject: str
    body: str
    dedupe_key: str
    payload: Mapping[str, Any]


class Sender(Protocol):
    """Delivers one notification or raises."""

    async def send(self, notification: Notification) -> None: ...


def header_text(value: str) -> str:
    """`value` fit for one header line: control characters become spaces, runs of spaces one."""
    return " ".join(_CONTROL.sub(" ", value).split())


def message_digest(dedupe_key: str) -> str:
    """A stable id for a notification's Message-ID / `webhook-id`, so receivers drop copies."""
    return hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]


class EmailSender:
    """Sends email over SMTP (`LEADFLOW_SMTP_*`)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def message(self, notification: Notification) -> EmailMessage:
        """The email for `notification`, every header value made safe for one line."""
        s = self._settings
        message = EmailMessage()
        message["From"] = header_text(s.smtp_sender)
        message["To"] = header_text(notification.target)
        message["Subject"] = header_text(notification.subject)
        domain = header_text(s.smtp_sender).rpartition("@")[2] or "leadflow.local"
        message["Message-ID"] = f"<{message_digest(notification.dedupe_key)}@{domain}>"
        message.set_content(notification.body)
        return message

    async def send(self, notification: Notification) -> None:
        """Send one email; raises on any SMTP failure."""
        s = self._settings
        await aiosmtplib.send(
            self.message(notification),
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            start_tls=s.smtp_starttls,
            use_tls=s.smtp_tls,
            timeout=s.notify_timeout_s,
        )


class WebhookSender:
    """POSTs JSON; signed with Standard Webhooks when the target's secret is known."""

    def __init__(self, client: httpx.AsyncClient, secrets: Mapping[str, str] | None = None) -> None:
        self._client = client
        self._secrets = dict(secrets or {})

    async def send(self, notification: Notification) -> None:
        """POST the notification; raises unless the receiver answers 2xx."""
        if notification.channel == "slack":
            body = httpx.Request("POST", "/", json={"text": notification.body}).content
        else:
            body = httpx.Request("POST", "/", json=dict(notification.payload)).content
        msg_id = f"msg_{message_digest(notification.dedupe_key)}"
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
        }
        secret = self._secrets.get(notification.target)
        if secret:
            headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
        # The receiver may carry on with the lead's trace (the send's span, leadflow.tracing).
        traceparent = tracing.current_traceparent()
        if traceparent is not None:
            headers[tracing.TRACEPARENT] = traceparent
        response = await self._client.post(notification.target, content=body, headers=headers)
        if not response.is_success:
            raise RuntimeError(f"the receiver answered {response.status_code}")
