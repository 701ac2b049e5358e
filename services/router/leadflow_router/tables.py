"""The router's tables: assignments, round-robin pointers and the decision record."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, String, Table, Text, UniqueConstraint

from leadflow.db.tables import Id, UtcDateTime, metadata

assignments = Table(
    "assignments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("assignment_id", String(64), nullable=False, unique=True),
    Column("lead_key", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("rep_id", String(64), nullable=True),
    Column("team", String(64), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("assigned_at", UtcDateTime(), nullable=False),
    UniqueConstraint("lead_key", "seq"),
)

round_robin_pointers = Table(
    "round_robin_pointers",
    metadata,
    Column("team", String(64), primary_key=True),
    Column("last_rep_id", String(64), nullable=True),
    Column("turns", Integer, nullable=False),
)

routing_decisions = Table(
    "routing_decisions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_key", String(64), nullable=False),
    Column("assignment_id", String(64), nullable=False),
    Column("decided_at", UtcDateTime(), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("team", String(64), nullable=False),
    Column("rep_id", String(64), nullable=True),
    Column("reason", Text, nullable=False),
    Column("candidates", JSON, nullable=False),
    Column("skipped", JSON, nullable=False),
    Column("config_version", String(64), nullable=False),
    Index("ix_routing_decisions_lead_key_decided_at", "lead_key", "decided_at"),
)
