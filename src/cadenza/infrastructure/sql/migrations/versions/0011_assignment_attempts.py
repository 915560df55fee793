"""assignments: an index on (task_id, idempotency_key), the lookup of a task attempt's newest
assignment that every dispatch makes (``AssignmentStore.latest``)

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_assignments_attempt", "assignments", ["task_id", "idempotency_key"])


def downgrade() -> None:
    op.drop_index("ix_assignments_attempt", table_name="assignments")
