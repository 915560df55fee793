"""workspace quotas: limits per workspace, starts per minute, token/cost spend per period and
the holds of starts admitted under a running limit

Revision ID: 0013
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_quotas",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("max_running", sa.Integer(), nullable=True),
        sa.Column("starts_per_minute", sa.Integer(), nullable=True),
        sa.Column("tokens_per_day", sa.BigInteger(), nullable=True),
        sa.Column("tokens_per_month", sa.BigInteger(), nullable=True),
        sa.Column("cost_per_day", sa.Float(), nullable=True),
        sa.Column("cost_per_month", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id"),
    )
    op.create_table(
        "quota_starts",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("minute", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("starts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "minute"),
    )
    op.create_table(
        "quota_spend",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "period"),
    )
    op.create_table(
        "quota_holds",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("hold", sa.String(length=40), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "hold"),
    )


def downgrade() -> None:
    op.drop_table("quota_holds")
    op.drop_table("quota_spend")
    op.drop_table("quota_starts")
    op.drop_table("workspace_quotas")
