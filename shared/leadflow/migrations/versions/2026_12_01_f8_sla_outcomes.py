"""outcomes the SLA monitor received, per person

Revision ID: f8_sla_outcomes
Revises: f8_aliases
Create Date: 2026-12-01

Adds `sla_outcomes`: every outcome that stops the clock, under the key of the person it
was applied to. A merge reads them, so an outcome one of the person's keys received before
anyone knew the key was theirs closes the window of the assignment made under another.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f8_sla_outcomes"
down_revision: str | None = "f8_aliases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sla_outcomes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("lead_key", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("activity", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_outcomes")),
    )
    op.create_index("ix_sla_outcomes_lead_key", "sla_outcomes", ["lead_key"])


def downgrade() -> None:
    op.drop_index("ix_sla_outcomes_lead_key", table_name="sla_outcomes")
    op.drop_table("sla_outcomes")
