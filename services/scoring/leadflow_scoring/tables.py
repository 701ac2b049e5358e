"""The scoring service's tables: one profile per person, their identifiers, and their touches."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, String, Table, text

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
    Column("grade", String(2), nullable=False, server_default=""),
    Column("reasons", JSON, nullable=False, server_default=text("'[]'")),
    Column("first_touch", JSON, nullable=True),
    Column("last_touch", JSON, nullable=True),
    # Set when another profile absorbed this one: the person lives on under that key.
    Column("merged_into", String(64), nullable=True),
    # What scoring keeps of the person (leadflow_scoring.snapshot): an event reads this
    # instead of every touch. Empty once the profile is merged into another.
    Column("aggregate", JSON, nullable=True),
    Index("ix_lead_profiles_merged_into", "merged_into"),
)

# Every identifier (lead key of an email or phone) belongs to one profile. The row is
# also the lock that serialises two events of one person arriving on two partitions.
lead_identifiers = Table(
    "lead_identifiers",
    metadata,
    Column("identifier", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("lead_key", String(64), nullable=True),
    Column("first_event_id", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_lead_identifiers_lead_key", "lead_key"),
)

# Every touch, append-only: the profile API lists them, and a person is folded again from
# them only when the engagement rules change; scoring an event never reads them.
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
    # What this event said about the person; the profile is folded from these in time order.
    Column("fields", JSON, nullable=False, server_default=text("'{}'")),
    Index("ix_lead_touches_lead_key_occurred_at", "lead_key", "occurred_at"),
    # Retention prunes old touches by it (LEADFLOW_RETENTION_TOUCHES_DAYS).
    Index("ix_lead_touches_occurred_at", "occurred_at"),
)
