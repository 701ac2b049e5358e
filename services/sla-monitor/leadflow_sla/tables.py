"""The SLA monitor's tables: follow-up windows, their durable timers (the rows are the truth),
the outcomes each person received, and the console's sign-ins."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from leadflow.db.tables import Id, UtcDateTime, metadata

# One row per stage of an assignment's ladder (warning, breached, escalated); the monitor
# fires the open ones whose due time has come, each exactly once (open -> fired).
sla_timers = Table(
    "sla_timers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("assignment_id", String(64), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("lead_key", String(64), nullable=False),
    Column("policy", String(64), nullable=False),
    Column("rep_id", String(64), nullable=False),
    Column("team", String(64), nullable=False),
    Column("assigned_at", UtcDateTime(), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    # The trace of the assignment that opened it: its alert continues there.
    Column("traceparent", String(55), nullable=True),
    UniqueConstraint("assignment_id", "stage"),
    Index("ix_sla_timers_status_due_at", "status", "due_at"),
    Index("ix_sla_timers_lead_key", "lead_key"),
)

# One row per assignment under a policy: open until the lead is contacted (or accepted,
# rejected, converted) or reassigned; what managers see as open and overdue leads.
sla_windows = Table(
    "sla_windows",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("assignment_id", String(64), nullable=False, unique=True),
    Column("lead_key", String(64), nullable=False),
    Column("policy", String(64), nullable=False),
    Column("clock", String(16), nullable=False),
    Column("window_s", Float, nullable=False),
    Column("tier", String(16), nullable=False),
    Column("rep_id", String(64), nullable=False),
    Column("team", String(64), nullable=False),
    # Escalations of this lead before this assignment (its previous reps).
    Column("escalations", Integer, nullable=False),
    Column("assigned_at", UtcDateTime(), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("outcome", String(16), nullable=True),
    Column("warned_at", UtcDateTime(), nullable=True),
    Column("breached_at", UtcDateTime(), nullable=True),
    Column("escalated_at", UtcDateTime(), nullable=True),
    Column("contacted_at", UtcDateTime(), nullable=True),
    Column("closed_at", UtcDateTime(), nullable=True),
    # The assignment's place among those the router made at the same `assigned_at`
    # (`lead.assigned`'s `batch_position`): of a person's two, a merge keeps the first.
    Column("batch_position", Integer, nullable=True),
    Index("ix_sla_windows_status_team_due_at", "status", "team", "due_at"),
    Index("ix_sla_windows_status_rep_id_due_at", "status", "rep_id", "due_at"),
    Index("ix_sla_windows_lead_key_status", "lead_key", "status"),
)

# Every outcome that stops the clock (contacted, accepted, rejected, converted), under the
# key of the person it was applied to, moved to the survivor with their windows. A merge
# reads them: an outcome one of the person's keys received before anyone knew the key was
# theirs closes the window of the assignment made under another key.
sla_outcomes = Table(
    "sla_outcomes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_key", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("activity", String(16), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Index("ix_sla_outcomes_lead_key", "lead_key"),
)

# One row per signed-in console viewer, shared by every SLA monitor on the database. The
# row is found by the SHA-256 of the session id the viewer's cookie holds; the credential
# they signed in with is kept encrypted under a key derived from that id, so the table
# alone neither signs anyone in nor gives away a token (leadflow_sla.console.sessions).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    # The principal: name, scopes, rep, teams, how they signed in.
    Column("principal", JSON, nullable=False),
    Column("credential", LargeBinary, nullable=False),
    Column("csrf", String(64), nullable=False),
    # What the last action did, shown once on the next page.
    Column("flash", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    # An OIDC access token's own expiry: the session never outlives the credential.
    Column("ends_at", UtcDateTime(), nullable=True),
    Index("ix_console_sessions_expires_at", "expires_at"),
)
