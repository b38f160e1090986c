"""Civil capacity as its own field of a person (its basis and since when), and a household without a head
for now: its follow-up flag and guardian contact (issue 13).

A person recorded without full civil capacity before becomes LIMITED (a court decision limited it: the
weaker of the two claims); everyone else BY_AGE. The downgrade maps LIMITED and NONE back to false.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# JsonType of services.common.db, spelled out as it is today.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("people") as batch:
        batch.add_column(
            sa.Column("civil_capacity", sa.String(length=14), server_default="BY_AGE", nullable=False)
        )
        batch.add_column(sa.Column("civil_capacity_since", sa.Date(), nullable=True))
    op.execute("UPDATE people SET civil_capacity = 'LIMITED' WHERE full_civil_capacity = false")
    with op.batch_alter_table("people") as batch:
        batch.drop_column("full_civil_capacity")
    with op.batch_alter_table("households") as batch:
        batch.add_column(sa.Column("follow_up", sa.String(length=40), server_default="", nullable=False))
        batch.add_column(sa.Column("follow_up_since", sa.Date(), nullable=True))
        batch.add_column(sa.Column("guardian", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("households") as batch:
        batch.drop_column("guardian")
        batch.drop_column("follow_up_since")
        batch.drop_column("follow_up")
    with op.batch_alter_table("people") as batch:
        batch.add_column(
            sa.Column("full_civil_capacity", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    op.execute("UPDATE people SET full_civil_capacity = false WHERE civil_capacity IN ('LIMITED', 'NONE')")
    with op.batch_alter_table("people") as batch:
        batch.drop_column("civil_capacity_since")
        batch.drop_column("civil_capacity")
