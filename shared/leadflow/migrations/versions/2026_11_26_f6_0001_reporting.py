"""reporting

Revision ID: f6_0001
Revises: f3_0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f6_0001"
down_revision: str | None = "f3_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "lead_costs",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("cost_per_lead", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", name=op.f("pk_lead_costs")),
    )
    op.create_table(
        "lead_lifecycles",
        sa.Column("lead_key", sa.String(length=64), nullable=False),
        sa.Column("touches", sa.Integer(), nullable=False),
        sa.Column("first_touch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_source", sa.String(length=128), nullable=True),
        sa.Column("first_campaign", sa.String(length=200), nullable=True),
        sa.Column("first_segment", sa.String(length=64), nullable=True),
        sa.Column("last_touch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_source", sa.String(length=128), nullable=True),
        sa.Column("last_campaign", sa.String(length=200), nullable=True),
        sa.Column("last_segment", sa.String(length=64), nullable=True),
        sa.Column("tier", sa.String(length=16), nullable=True),
        sa.Column("tier_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mql_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("rep_id", sa.String(length=64), nullable=True),
        sa.Column("owner_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reassignments", sa.Integer(), nullable=False),
        sa.Column("contacted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejection_reason", sa.String(length=500), nullable=True),
        sa.Column("converted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("won_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("won_deals", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Float(), nullable=False),
        sa.Column("reported_profit", sa.Float(), nullable=False),
        sa.Column("revenue_without_profit", sa.Float(), nullable=False),
        sa.Column("lost_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lost_reason", sa.String(length=500), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lead_key", name=op.f("pk_lead_lifecycles")),
    )
    with op.batch_alter_table("lead_lifecycles", schema=None) as batch_op:
        batch_op.create_index("ix_lead_lifecycles_first_touch_at", ["first_touch_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("lead_lifecycles", schema=None) as batch_op:
        batch_op.drop_index("ix_lead_lifecycles_first_touch_at")

    op.drop_table("lead_lifecycles")
    op.drop_table("lead_costs")
