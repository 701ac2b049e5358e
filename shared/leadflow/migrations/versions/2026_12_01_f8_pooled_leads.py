"""leads waiting in a team's pool, and when nobody claimed them in time

Revision ID: f8_pooled_leads
Revises: f8_assignment_domain
Create Date: 2026-12-01

Adds `pooled_leads`: one row per lead a routing decision left in a team's pool (its pool
entry is the `assignments` row with status `pooled`, by `assignment_id`), with `due_at`
(indexed), when the team's manager hears that nobody claimed it, and `alerted_at`, set once
that happened, so the router's timer acts on each entry once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f8_pooled_leads"
down_revision: str | None = "f8_assignment_domain"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pooled_leads",
        sa.Column("assignment_id", sa.String(length=64), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=False),
        sa.Column("pooled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_pooled_leads")),
    )
    op.create_index("ix_pooled_leads_due_at", "pooled_leads", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_pooled_leads_due_at", table_name="pooled_leads")
    op.drop_table("pooled_leads")
