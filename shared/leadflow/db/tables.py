"""Tables shared by every consumer: the inbox of processed events and the outbox.

Each service declares its own tables on the same `metadata` in its `tables.py`;
the single Alembic tree under `leadflow/migrations` creates them all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused; pass an aware UTC datetime.")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("processed_at", UtcDateTime(), nullable=False),
    # Retention prunes by it (leadflow.retention).
    Index("ix_processed_events_processed_at", "processed_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("producer", String(64), nullable=False),
    Column("topic", String(128), nullable=False),
    Column("key", String(128), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    # The W3C trace context the record carries as its `traceparent` header (leadflow.tracing).
    Column("traceparent", String(55), nullable=True),
    Index("ix_outbox_producer_sent_at_id", "producer", "sent_at", "id"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("producer", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("target", String(512), nullable=False),
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("failed_at", UtcDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    # Which dispatcher is sending the row, until when (by the database's clock).
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_until", UtcDateTime(), nullable=True),
    # The trace of the lead the notification is about: its send is a span there.
    Column("traceparent", String(55), nullable=True),
    Index(
        "ix_notifications_producer_sent_at_next_attempt_at",
        "producer",
        "sent_at",
        "next_attempt_at",
    ),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

# What each consumer knows of who is who: a key a person was known by (an absorbed
# profile, an identifier) and the key they are known by now. A row always points at the
# final survivor, never at another alias (`leadflow.aliases`).
lead_aliases = Table(
    "lead_aliases",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("survivor", String(64), nullable=False),
    Column("merged_at", UtcDateTime(), nullable=False),
    Index("ix_lead_aliases_consumer_survivor", "consumer", "survivor"),
)

# Who was erased (a privacy request), without saying who: the SHA-256 of each of the
# person's keys, and when. Consumers drop events about them from before that moment
# (`leadflow.erasure`); nothing else of the person is kept anywhere.
erasures = Table(
    "erasures",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("erasure_id", String(64), nullable=False),
    Column("erased_at", UtcDateTime(), nullable=False),
)
