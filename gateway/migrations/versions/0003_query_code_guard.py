"""The query-code guard: lookup buckets per client address shared by every replica, and the wrong-code
count and lock of each case number (issue 15).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lookup_buckets",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_lookup_buckets")),
    )
    op.create_index(op.f("ix_lookup_buckets_updated_at"), "lookup_buckets", ["updated_at"])
    op.create_table(
        "query_code_failures",
        sa.Column("case_no", sa.String(length=32), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_no", name=op.f("pk_query_code_failures")),
    )


def downgrade() -> None:
    op.drop_table("query_code_failures")
    op.drop_index(op.f("ix_lookup_buckets_updated_at"), table_name="lookup_buckets")
    op.drop_table("lookup_buckets")
