"""The SLA monitor's tables: durable follow-up timers (the rows are the truth)."""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, UniqueConstraint

from leadflow.db.tables import Id, UtcDateTime, metadata

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
    UniqueConstraint("assignment_id", "stage"),
    Index("ix_sla_timers_status_due_at", "status", "due_at"),
    Index("ix_sla_timers_lead_key", "lead_key"),
)
