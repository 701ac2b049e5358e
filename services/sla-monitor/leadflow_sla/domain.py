"""SLA arithmetic and alert wording: pure functions (no IO, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# Outcomes that stop the follow-up clock: a contact, an acceptance, and every outcome that
# ends the lead (a rep who won or lost it plainly followed it up; no breach is due).
STOPPING_ACTIVITIES = {
    "lead.contacted",
    "lead.accepted",
    "lead.rejected",
    "lead.converted",
    "lead.won",
    "lead.lost",
}
# Outcomes after which the router holds the lead for no rep any more (a contact or an
# acceptance stops the clock, but the assignment stays the rep's).
ENDING_ACTIVITIES = {"lead.rejected", "lead.converted", "lead.won", "lead.lost"}
# The outcomes the monitor keeps: those that stop the clock, and those that end a lead.
OUTCOMES = STOPPING_ACTIVITIES | ENDING_ACTIVITIES
# What opens, closes and moves windows (the consumer's table also erases, `lead.erased`).
WINDOW_EVENTS = ("lead.assigned", "lead.reassigned", "lead.merged", *sorted(OUTCOMES))


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
    due_at: datetime | None = None,
) -> str:
    """What the manager reads: who missed which lead, by how much, and where to look.

    `due_at` is when the window closed (in business time it is later than
    `assigned_at + window`); it defaults to the wall-clock close.
    """
    overdue = (now - (due_at or assigned_at + window)).total_seconds()
    assigned_utc = assigned_at.astimezone(UTC)
    return (
        f"{rep_name} ({team}) has not contacted lead {lead_key} within the "
        f"{describe_lateness(window.total_seconds())} {policy} window: assigned "
        f"{assigned_utc:%Y-%m-%d %H:%M} UTC, now {describe_lateness(overdue)} overdue. "
        f"Routing record: {lead_url}"
    )


def warning_message(
    *,
    rep_name: str,
    lead_key: str,
    policy: str,
    window: timedelta,
    due_at: datetime,
    now: datetime,
    lead_url: str,
) -> str:
    """What the rep reads before the window closes: which lead, when it is due, where to look."""
    left = (due_at - now).total_seconds()
    return (
        f"{rep_name}, lead {lead_key} is still waiting for your first contact: the "
        f"{describe_lateness(window.total_seconds())} {policy} window closes at "
        f"{due_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC (in {describe_lateness(left)}). "
        f"Routing record: {lead_url}"
    )


def escalation_message(
    *,
    rep_name: str,
    team: str,
    lead_key: str,
    policy: str,
    window_due_at: datetime,
    now: datetime,
    escalation: int,
    max_escalations: int,
    lead_url: str,
) -> str:
    """What the manager reads when a missed lead is taken from the rep and routed again."""
    overdue = (now - window_due_at).total_seconds()
    return (
        f"{rep_name} ({team}) still has not contacted lead {lead_key}, "
        f"{describe_lateness(overdue)} after the {policy} window closed: the lead is being "
        f"reassigned (escalation {escalation} of {max_escalations}). Routing record: {lead_url}"
    )
