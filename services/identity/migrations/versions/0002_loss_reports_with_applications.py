"""Loss reports filed with a card application, rejection codes, cards cancelled on death, and the cursor
of the household register's event stream (issue 13).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# UTCDateTime of services.common.db, spelled out as it is today.
UTC_DATETIME = sa.DateTime(timezone=True)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("card_applications") as batch:
        batch.add_column(sa.Column("loss_report_id", sa.String(length=36), nullable=True))
        batch.add_column(
            sa.Column("loss_already_reported", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("rejection_code", sa.String(length=40), server_default="", nullable=False))
    with op.batch_alter_table("cards") as batch:
        batch.add_column(sa.Column("cancelled_on", sa.Date(), nullable=True))
    with op.batch_alter_table("loss_reports") as batch:
        batch.add_column(sa.Column("application_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("withdrawn_on", sa.Date(), nullable=True))
        batch.create_index("ix_loss_reports_application_id", ["application_id"], unique=False)
    op.create_table(
        "event_cursors",
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_event_cursors"),
    )


def downgrade() -> None:
    op.drop_table("event_cursors")
    with op.batch_alter_table("loss_reports") as batch:
        batch.drop_index("ix_loss_reports_application_id")
        batch.drop_column("withdrawn_on")
        batch.drop_column("application_id")
    with op.batch_alter_table("cards") as batch:
        batch.drop_column("cancelled_on")
    with op.batch_alter_table("card_applications") as batch:
        batch.drop_column("rejection_code")
        batch.drop_column("loss_already_reported")
        batch.drop_column("loss_report_id")
