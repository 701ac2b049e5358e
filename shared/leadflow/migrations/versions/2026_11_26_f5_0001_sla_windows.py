"""sla windows

Revision ID: f5_0001
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f5_0001"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "sla_windows",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("assignment_id", sa.String(length=64), nullable=False),
        sa.Column("lead_key", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("clock", sa.String(length=16), nullable=False),
        sa.Column("window_s", sa.Float(), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("rep_id", sa.String(length=64), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=False),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("contacted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_windows")),
        sa.UniqueConstraint("assignment_id", name=op.f("uq_sla_windows_assignment_id")),
    )
    with op.batch_alter_table("sla_windows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sla_windows_lead_key_status", ["lead_key", "status"], unique=False
        )
        batch_op.create_index(
            "ix_sla_windows_status_rep_id_due_at", ["status", "rep_id", "due_at"], unique=False
        )
        batch_op.create_index(
            "ix_sla_windows_status_team_due_at", ["status", "team", "due_at"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("sla_windows", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_windows_status_team_due_at")
        batch_op.drop_index("ix_sla_windows_status_rep_id_due_at")
        batch_op.drop_index("ix_sla_windows_lead_key_status")

    op.drop_table("sla_windows")
