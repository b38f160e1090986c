"""Rejection codes on both applications; a residence permit lodged while its work permit is in review
(awaiting_work_permit), one replacing the permit of a job change (replaces_id), and one without an entry
date (a job change inside China) (issue 13).

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
    with op.batch_alter_table("work_permit_applications") as batch:
        batch.add_column(sa.Column("rejection_codes", JSON, nullable=True))
    with op.batch_alter_table("residence_permit_applications") as batch:
        batch.add_column(sa.Column("rejection_codes", JSON, nullable=True))
        batch.add_column(
            sa.Column("awaiting_work_permit", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("replaces_id", sa.String(length=36), nullable=True))
        batch.alter_column("entry_date", existing_type=sa.Date(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("residence_permit_applications") as batch:
        batch.alter_column("entry_date", existing_type=sa.Date(), nullable=False)
        batch.drop_column("replaces_id")
        batch.drop_column("awaiting_work_permit")
        batch.drop_column("rejection_codes")
    with op.batch_alter_table("work_permit_applications") as batch:
        batch.drop_column("rejection_codes")
