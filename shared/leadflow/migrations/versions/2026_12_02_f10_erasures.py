"""erasures and retention indexes

Revision ID: f10_erasures
Revises: f8_pooled_leads
Create Date: 2026-12-02

Adds `erasures` (the SHA-256 of each key of an erased person, and when: see
`leadflow.erasure`) and the indexes retention prunes by: processed events by when they
were processed, touches by when they happened.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f10_erasures"
down_revision: str | None = "f8_pooled_leads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("erasure_id", sa.String(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_erasures")),
    )
    op.create_index("ix_processed_events_processed_at", "processed_events", ["processed_at"])
    op.create_index("ix_lead_touches_occurred_at", "lead_touches", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_lead_touches_occurred_at", table_name="lead_touches")
    op.drop_index("ix_processed_events_processed_at", table_name="processed_events")
    op.drop_table("erasures")
