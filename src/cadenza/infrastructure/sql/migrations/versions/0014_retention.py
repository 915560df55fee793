"""retention: per-workspace retention policies and legal holds on instances

Revision ID: 0014
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("workspace_id", sa.String(40), primary_key=True),
        sa.Column("finished_s", sa.Float, nullable=True),
        sa.Column("failed_s", sa.Float, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
    )
    op.create_table(
        "legal_holds",
        sa.Column("instance_id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("set_by", sa.String(120), nullable=False),
        sa.Column("set_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("legal_holds")
    op.drop_table("retention_policies")
