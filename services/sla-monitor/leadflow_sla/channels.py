"""Who hears of an SLA alert, on which channel, in which words (pure)."""

from __future__ import annotations

import hashlib

from leadflow.config import Sla
from leadflow.events import SlaAlert
from leadflow.notifications import Channel, Notification
from leadflow_sla.domain import describe_lateness

DEDUPE_KEY_MAX = 200


def dedupe_key(alert: SlaAlert, channel: str, target: str) -> str:
    """`sla:<assignment>:<stage>:<channel>:<target>`: one notification per alert and recipient."""
    key = f"sla:{alert.assignment_id}:{alert.stage}:{channel}:{target}"
    if len(key) <= DEDUPE_KEY_MAX:
        return key
    digest = hashlib.sha256(target.encode()).hexdigest()[:32]
    return f"sla:{alert.assignment_id}:{alert.stage}:{channel}:{digest}"


def subject(alert: SlaAlert) -> str:
    """The email subject line: the stage, the lead and the rep, readable in an inbox list."""
    if alert.stage == "warning":
        left = (alert.due_at - alert.fired_at).total_seconds()
        return f"Follow up lead {alert.lead_key}: due in {describe_lateness(left)}"
    if alert.stage == "breached":
        return f"Overdue lead {alert.lead_key}: {alert.rep_name} missed the {alert.policy} window"
    return f"Escalated lead {alert.lead_key}: reassigning from {alert.rep_name}"


def notifications_for(alert: SlaAlert, sla: Sla, rep_email: str | None) -> list[Notification]:
    """The notifications an alert raises: email to the rep (warning) or the manager, webhooks.

    Webhooks get the alert as JSON (`type` added), or `{"text": message}` for Slack.
    """
    found: list[Notification] = []
    payload = {"type": f"sla.{alert.stage}", **alert.model_dump(mode="json")}
    if sla.email:
        email_to = rep_email if alert.stage == "warning" else alert.manager_email
        if email_to:
            found.append(
                Notification(
                    channel="email",
                    target=email_to,
                    subject=subject(alert),
                    body=alert.message,
                    dedupe_key=dedupe_key(alert, "email", email_to),
                    payload=payload,
                )
            )
    for hook in sla.webhooks:
        if not hook.wants(alert.stage, alert.team):
            continue
        channel: Channel = "slack" if hook.format == "slack" else "webhook"
        found.append(
            Notification(
                channel=channel,
                target=hook.url,
                subject=subject(alert),
                body=alert.message,
                dedupe_key=dedupe_key(alert, channel, hook.url),
                payload=payload,
            )
        )
    return found
