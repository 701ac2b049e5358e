"""the company domain of each assignment, for sticky ownership

Revision ID: f8_assignment_domain
Revises: f8_contacted_at
Create Date: 2026-12-01

Adds `assignments.domain` (indexed): the lead's company domain, its company's or else its
email's unless a free-mail one, so a sticky routing rule finds in one statement per batch
who holds an open lead of a company. Existing assignments have none: they count for
stickiness once the company's next lead is routed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f8_assignment_domain"
down_revision: str | None = "f8_contacted_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("domain", sa.String(length=253), nullable=True))
        batch_op.create_index("ix_assignments_domain", ["domain"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_domain")
        batch_op.drop_column("domain")
