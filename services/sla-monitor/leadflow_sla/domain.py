"""SLA arithmetic and alert wording: pure functions (no IO, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

STOPPING_ACTIVITIES = {"lead.contacted", "lead.accepted", "lead.rejected", "lead.converted"}


def due_at(assigned_at: datetime, window: timedelta) -> datetime:
    """When the follow-up window of an assignment closes (wall time)."""
    return assigned_at + window


def describe_lateness(seconds: float) -> str:
    """`seconds` as a short human duration: `45 s`, `12 min`, `3 h 5 min`."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def breach_message(
    *,
    rep_name: str,
    team: str,
    lead_key: str,
    policy: str,
    window: timedelta,
    assigned_at: datetime,
    now: datetime,
    lead_url: str,
) -> str:
    """What the manager reads: who missed which lead, by how much, and where to look."""
    overdue = (now - assigned_at - window).total_seconds()
    assigned_utc = assigned_at.astimezone(UTC)
    return (
        f"{rep_name} ({team}) has not contacted lead {lead_key} within the "
        f"{describe_lateness(window.total_seconds())} {policy} window: assigned "
        f"{assigned_utc:%Y-%m-%d %H:%M} UTC, now {describe_lateness(overdue)} overdue. "
        f"Routing record: {lead_url}"
    )
