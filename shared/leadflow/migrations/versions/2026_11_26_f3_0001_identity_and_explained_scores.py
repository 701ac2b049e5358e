"""identity resolution and explained scores

Revision ID: f3_0001
Revises: f4_0001
Create Date: 2026-11-26

Adds the identifiers table (one profile per person, whichever email or phone an event
carries), the grade, reasons, attribution and merge pointer of a profile, and the
fields each touch said about the person. Existing profiles get their identifiers, and
their latest touch carries the profile's fields, so re-folding touches keeps them.
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f3_0001"
down_revision: str | None = "f4_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lead_identifiers",
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("lead_key", sa.String(length=64), nullable=True),
        sa.Column("first_event_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("identifier", name=op.f("pk_lead_identifiers")),
    )
    with op.batch_alter_table("lead_identifiers", schema=None) as batch_op:
        batch_op.create_index("ix_lead_identifiers_lead_key", ["lead_key"], unique=False)

    with op.batch_alter_table("lead_profiles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("grade", sa.String(length=2), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("reasons", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
        batch_op.add_column(sa.Column("first_touch", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("last_touch", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("merged_into", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_lead_profiles_merged_into", ["merged_into"], unique=False)

    with op.batch_alter_table("lead_touches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fields", sa.JSON(), server_default=sa.text("'{}'"), nullable=False)
        )

    _backfill()


def _key(identity: str) -> str:
    # The lead key as the intake derived it when this ran: plain SHA-256, before key secrets
    # (leadflow.keys.unsalted_key), frozen here.
    return "lk_" + hashlib.sha256(identity.encode()).hexdigest()[:24]


def _backfill() -> None:
    bind = op.get_bind()
    profiles = sa.table(
        "lead_profiles",
        sa.column("lead_key", sa.String),
        sa.column("fields", sa.JSON),
        sa.column("first_seen_at", sa.DateTime(timezone=True)),
    )
    identifiers = sa.table(
        "lead_identifiers",
        sa.column("identifier", sa.String),
        sa.column("kind", sa.String),
        sa.column("lead_key", sa.String),
        sa.column("first_event_id", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    touches = sa.table(
        "lead_touches",
        sa.column("id", sa.BigInteger),
        sa.column("lead_key", sa.String),
        sa.column("fields", sa.JSON),
    )
    taken: set[str] = set()
    for row in bind.execute(sa.select(profiles)).all():
        fields = row.fields or {}
        found = {row.lead_key: "key"}
        if fields.get("email"):
            found[_key(fields["email"])] = "email"
        if fields.get("phone"):
            found.setdefault(_key(fields["phone"]), "phone")
        for identifier, kind in sorted(found.items()):
            if identifier in taken:
                continue
            taken.add(identifier)
            bind.execute(
                sa.insert(identifiers).values(
                    identifier=identifier,
                    kind=kind,
                    lead_key=row.lead_key,
                    first_event_id="migration-f3_0001",
                    created_at=row.first_seen_at,
                )
            )
        latest = bind.execute(
            sa.select(sa.func.max(touches.c.id)).where(touches.c.lead_key == row.lead_key)
        ).scalar()
        if latest is not None:
            bind.execute(sa.update(touches).where(touches.c.id == latest).values(fields=fields))


def downgrade() -> None:
    with op.batch_alter_table("lead_touches", schema=None) as batch_op:
        batch_op.drop_column("fields")

    with op.batch_alter_table("lead_profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_lead_profiles_merged_into")
        batch_op.drop_column("merged_into")
        batch_op.drop_column("last_touch")
        batch_op.drop_column("first_touch")
        batch_op.drop_column("reasons")
        batch_op.drop_column("grade")

    with op.batch_alter_table("lead_identifiers", schema=None) as batch_op:
        batch_op.drop_index("ix_lead_identifiers_lead_key")

    op.drop_table("lead_identifiers")
