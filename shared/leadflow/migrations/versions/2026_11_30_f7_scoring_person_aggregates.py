"""person aggregates for scoring

Revision ID: f7_scoring
Revises: f7_leases
Create Date: 2026-11-30

Adds `lead_profiles.aggregate`: what scoring keeps of a person so that an event no
longer reads every touch of that person. Each live profile gets its touches, oldest
first, as the aggregate's `pending` touches (the stored format is specified in
`leadflow_scoring.snapshot`); the scoring service folds them under its scoring model at
the person's next event, so scores carry on from the same touches. A migration cannot
load the scoring model, hence the deferred fold.
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "f7_scoring"
down_revision: str | None = "f7_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PEOPLE = 200  # people per round trip of the backfill


def upgrade() -> None:
    with op.batch_alter_table("lead_profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("aggregate", sa.JSON(), nullable=True))
    _backfill()


def _backfill() -> None:
    bind = op.get_bind()
    profiles = sa.table(
        "lead_profiles",
        sa.column("lead_key", sa.String),
        sa.column("merged_into", sa.String),
        sa.column("aggregate", sa.JSON),
    )
    touches = sa.table(
        "lead_touches",
        sa.column("lead_key", sa.String),
        sa.column("event_id", sa.String),
        sa.column("source", sa.String),
        sa.column("activity", sa.String),
        sa.column("occurred_at", sa.DateTime(timezone=True)),
        sa.column("detail", sa.JSON),
        sa.column("fields", sa.JSON),
    )
    live = bind.execute(
        sa.select(profiles.c.lead_key)
        .where(profiles.c.merged_into.is_(None))
        .order_by(profiles.c.lead_key)
    )
    keys = list(live.scalars())
    update = (
        sa.update(profiles)
        .where(profiles.c.lead_key == sa.bindparam("key"))
        .values(aggregate=sa.bindparam("document"))
    )
    for start in range(0, len(keys), _PEOPLE):
        rows = bind.execute(
            sa.select(touches)
            .where(touches.c.lead_key.in_(keys[start : start + _PEOPLE]))
            .order_by(touches.c.lead_key, touches.c.occurred_at, touches.c.event_id)
        )
        documents = [
            {"key": lead_key, "document": {"v": 1, "pending": pending}}
            for lead_key, pending in _people(rows)
        ]
        if documents:
            bind.execute(update, documents)


def _people(rows: Any) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Touch rows sorted by person, grouped into each person's pending touches."""
    key: str | None = None
    pending: list[dict[str, Any]] = []
    for row in rows:
        if row.lead_key != key:
            if key is not None:
                yield key, pending
            key, pending = row.lead_key, []
        pending.append(
            {
                "activity": row.activity,
                "source": row.source,
                "at": _utc(row.occurred_at).isoformat(),
                "id": row.event_id,
                "detail": row.detail or {},
                "fields": row.fields or {},
            }
        )
    if key is not None:
        yield key, pending


def _utc(value: datetime) -> datetime:
    # SQLite hands back the naive UTC text it stores.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def downgrade() -> None:
    with op.batch_alter_table("lead_profiles", schema=None) as batch_op:
        batch_op.drop_column("aggregate")
