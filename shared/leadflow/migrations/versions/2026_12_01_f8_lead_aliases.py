"""lead aliases

Revision ID: f8_aliases
Revises: f7_scoring
Create Date: 2026-12-01

Adds `lead_aliases`: per consumer, every key a person was known by and the key they are
known by now (see `leadflow.aliases`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f8_aliases"
down_revision: str | None = "f7_scoring"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lead_aliases",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("survivor", sa.String(length=64), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "alias", name=op.f("pk_lead_aliases")),
    )
    op.create_index("ix_lead_aliases_consumer_survivor", "lead_aliases", ["consumer", "survivor"])


def downgrade() -> None:
    op.drop_index("ix_lead_aliases_consumer_survivor", table_name="lead_aliases")
    op.drop_table("lead_aliases")
