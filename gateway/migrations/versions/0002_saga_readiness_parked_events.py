"""The saga's readiness in SQL, its lease-recovery index, parked events and the notifier's flag.

- ``case_steps.ready``: kept by the runner whenever a step of the case changes; the due query reads the
  ready steps by ``next_attempt_at`` (index ``ix_case_steps_due`` now on ``ready, next_attempt_at``), so
  a backlog of steps waiting on decisions is never read. Existing PENDING and COMPENSATING steps are
  marked ready here: the runner checks each claimed step against its case before calling (and puts a
  step whose dependencies are not yet satisfied back to wait), so after the upgrade every step is
  looked at once and from then on the column is kept.
- ``ix_case_steps_lease`` (lease recovery) and ``ix_case_steps_request`` (binding by a creation event's
  request_id).
- ``parked_events``: department events about a resource no step holds yet.
- ``cases.notify_due``: set when a case's state changes; the notifier reads only those.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

BIG_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_steps") as batch:
        batch.add_column(sa.Column("ready", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.drop_index("ix_case_steps_due", table_name="case_steps")
    op.create_index("ix_case_steps_due", "case_steps", ["ready", "next_attempt_at"])
    op.create_index("ix_case_steps_lease", "case_steps", ["lease_until"])
    op.create_index("ix_case_steps_request", "case_steps", ["department", "request_id"])
    op.execute(
        "UPDATE case_steps SET ready = TRUE, next_attempt_at = COALESCE(next_attempt_at, updated_at) "
        "WHERE lease_owner IS NULL AND state IN ('PENDING', 'COMPENSATING')"
    )
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("notify_due", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.execute("UPDATE cases SET notify_due = FALSE WHERE notified_state = state")
    op.create_index(op.f("ix_cases_notify_due"), "cases", ["notify_due"])

    op.create_table(
        "parked_events",
        sa.Column("id", BIG_INT, autoincrement=True, nullable=False),
        sa.Column("department", sa.String(length=16), nullable=False),
        sa.Column("sequence", BIG_INT, nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("aggregate_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parked_events")),
        sa.UniqueConstraint("department", "sequence", name=op.f("uq_parked_events_department")),
    )
    op.create_index("ix_parked_events_resource", "parked_events", ["department", "aggregate_id"])
    op.create_index(op.f("ix_parked_events_created_at"), "parked_events", ["created_at"])


def downgrade() -> None:
    op.drop_table("parked_events")
    op.drop_index(op.f("ix_cases_notify_due"), table_name="cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("notify_due")
    op.drop_index("ix_case_steps_request", table_name="case_steps")
    op.drop_index("ix_case_steps_lease", table_name="case_steps")
    op.drop_index("ix_case_steps_due", table_name="case_steps")
    with op.batch_alter_table("case_steps") as batch:
        batch.drop_column("ready")
    op.create_index("ix_case_steps_due", "case_steps", ["state", "next_attempt_at"])
