"""Logical topic names and which event types travel on each."""

from __future__ import annotations

from typing import Literal

RECEIVED = "leads.received"
ACTIVITY = "leads.activity"
SCORED = "leads.scored"
ASSIGNED = "leads.assigned"
ALERTS = "leads.alerts"
DLQ = "leads.dlq"
# The bulk lane: leads of bulk sources (imports, re-syncs) travel on topics of their own,
# which scoring and the router read only while their live topic leaves them time.
RECEIVED_BULK = "leads.received.bulk"
SCORED_BULK = "leads.scored.bulk"

ALL = (RECEIVED, ACTIVITY, SCORED, ASSIGNED, ALERTS, DLQ, RECEIVED_BULK, SCORED_BULK)

Lane = Literal["live", "bulk"]


def topic_for(event_type: str, lane: Lane = "live") -> str:
    """The logical topic an event type is published on, in `lane`.

    Only received and scored leads have a bulk lane; everything else (assignments,
    alerts, activities) is rare per lead and travels on the one topic of its type.
    """
    if event_type == "lead.received":
        return RECEIVED_BULK if lane == "bulk" else RECEIVED
    if event_type == "lead.scored":
        return SCORED_BULK if lane == "bulk" else SCORED
    if event_type in ("lead.assigned", "lead.reassigned", "lead.pooled", "lead.unassigned"):
        return ASSIGNED
    if event_type.startswith("sla."):
        return ALERTS
    if event_type.startswith("lead."):
        return ACTIVITY
    raise ValueError(f"no topic carries events of type {event_type!r}.")
