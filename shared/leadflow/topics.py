"""Logical topic names and which event types travel on each."""

from __future__ import annotations

RECEIVED = "leads.received"
ACTIVITY = "leads.activity"
SCORED = "leads.scored"
ASSIGNED = "leads.assigned"
ALERTS = "leads.alerts"
DLQ = "leads.dlq"

ALL = (RECEIVED, ACTIVITY, SCORED, ASSIGNED, ALERTS, DLQ)


def topic_for(event_type: str) -> str:
    """The logical topic an event type is published on."""
    if event_type == "lead.received":
        return RECEIVED
    if event_type == "lead.scored":
        return SCORED
    if event_type in ("lead.assigned", "lead.reassigned", "lead.unassigned"):
        return ASSIGNED
    if event_type.startswith("sla."):
        return ALERTS
    if event_type.startswith("lead."):
        return ACTIVITY
    raise ValueError(f"no topic carries events of type {event_type!r}.")
