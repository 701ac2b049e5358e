"""trace context with the work kept for later

Revision ID: f11_traceparent
Revises: f10_erasures
Create Date: 2026-12-03

Adds a nullable `traceparent` (a W3C trace context, see `leadflow.tracing`) to the rows
that hold a lead's work for later: `outbox` (the header its record is published with),
`notifications` (its sends are spans of the lead's trace) and `sla_timers` (the alert
continues the assignment's trace). Rows from before have none and start a trace of
their own.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f11_traceparent"
down_revision: str | None = "f10_erasures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("outbox", "notifications", "sla_timers")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("traceparent")
