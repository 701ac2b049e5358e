"""whether a lifecycle's owner came from a first assignment

Revision ID: f8_owner_first
Revises: f8_sla_outcomes
Create Date: 2026-12-01

Adds `lead_lifecycles.owner_first`. When two profiles of one person were each assigned,
reports keep the owner of the earlier first assignment, as the router does, while a later
hand-off (a reassignment) still wins over any first assignment. Existing owners came from
a first assignment exactly when the lead was never reassigned.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f8_owner_first"
down_revision: str | None = "f8_sla_outcomes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("lead_lifecycles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("owner_first", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    lifecycles = sa.table(
        "lead_lifecycles",
        sa.column("owner_first", sa.Boolean),
        sa.column("owner_since", sa.DateTime(timezone=True)),
        sa.column("reassignments", sa.Integer),
    )
    op.execute(
        lifecycles.update()
        .where(lifecycles.c.owner_since.is_not(None), lifecycles.c.reassignments == 0)
        .values(owner_first=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("lead_lifecycles", schema=None) as batch_op:
        batch_op.drop_column("owner_first")
