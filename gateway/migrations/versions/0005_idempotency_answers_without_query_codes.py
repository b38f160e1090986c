"""The answers kept for Idempotency-Key replays no longer hold the case's query code: a case keeps its
query code only as a hash, and a replay is given a new code. Answers stored before this revision have
theirs removed.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE idempotency_keys SET response = response - 'query_code'")
    else:
        op.execute("UPDATE idempotency_keys SET response = json_remove(response, '$.query_code')")


def downgrade() -> None:
    """Nothing to restore: the codes removed were never kept anywhere else."""
