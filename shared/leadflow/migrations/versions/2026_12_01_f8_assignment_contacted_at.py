"""when the rep holding an assignment first contacted the lead

Revision ID: f8_contacted_at
Revises: f8_owner_first
Create Date: 2026-12-01

Adds `assignments.contacted_at`: the router records the first contact (or acceptance) the
CRM reports while an assignment holds the lead, so marking a rep out of office hands on
only the leads they have not contacted yet. Existing assignments have no contact recorded.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f8_contacted_at"
down_revision: str | None = "f8_owner_first"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contacted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_column("contacted_at")
