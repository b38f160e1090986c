"""Parked events keep their data: a department event that arrives before its step binds the resource
(the create call's answer was lost, the department decided before the retry) carries results — a fee
fixed, a card number, a rejection's reasons and codes — that the case must show once the event is
applied. Rows parked before this revision have none (NULL): they are applied as before, state only.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("parked_events") as batch:
        batch.add_column(sa.Column("data", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("parked_events") as batch:
        batch.drop_column("data")
