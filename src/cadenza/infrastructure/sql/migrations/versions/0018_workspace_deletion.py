"""workspace deletion: a workspace's state ("active" or "deleting") and its deletion's progress

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="active"))
        batch.add_column(sa.Column("deletion_requested_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("deletion_requested_by", sa.String(120), nullable=True))
        batch.add_column(sa.Column("deleted_rows", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("deleted_rows")
        batch.drop_column("deletion_requested_by")
        batch.drop_column("deletion_requested_at")
        batch.drop_column("state")
