"""the order the router decided assignments made at the same instant

Revision ID: f8_batch_positions
Revises: f12_console_sessions
Create Date: 2026-12-05

Adds `assignments.batch_position` and `sla_windows.batch_position`: an assignment's place
among those the router made at the same `assigned_at` (one batch), in the order it
decided them, which `lead.assigned` now carries to the SLA monitor (a batch at the same
instant as one before numbers on after it: `ix_assignments_assigned_at_batch_position`).
When a person's two profiles were assigned in one batch and then merge, the router and the
SLA monitor both keep the first one, as batches of one event each would have; before, the
smaller assignment id (a hash of an event id) was kept. Existing rows have no position and
keep that order among themselves.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f8_batch_positions"
down_revision: str | None = "f12_console_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("assignments", "sla_windows"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("batch_position", sa.Integer(), nullable=True))
    op.create_index(
        "ix_assignments_assigned_at_batch_position",
        "assignments",
        ["assigned_at", "batch_position"],
    )


def downgrade() -> None:
    op.drop_index("ix_assignments_assigned_at_batch_position", table_name="assignments")
    for table in ("sla_windows", "assignments"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("batch_position")
