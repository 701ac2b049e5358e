"""The scoring service's tables: one profile per person and the touches behind it."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, String, Table

from leadflow.db.tables import Id, UtcDateTime, metadata

lead_profiles = Table(
    "lead_profiles",
    metadata,
    Column("lead_key", String(64), primary_key=True),
    Column("fields", JSON, nullable=False),
    Column("first_source", String(64), nullable=False),
    Column("last_source", String(64), nullable=False),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("score", Integer, nullable=False),
    Column("fit", Integer, nullable=False),
    Column("engagement", Integer, nullable=False),
    Column("tier", String(16), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("qualified_at", UtcDateTime(), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

lead_touches = Table(
    "lead_touches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_key", String(64), nullable=False),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("source", String(64), nullable=False),
    Column("activity", String(64), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_lead_touches_lead_key_occurred_at", "lead_key", "occurred_at"),
)
