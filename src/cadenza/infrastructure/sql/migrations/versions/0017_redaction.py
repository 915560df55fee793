"""redaction: PII redaction rules per workspace

Revision ID: 0017
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"  # h-console: after h-config's 0015 (re-chained at merge)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "redaction_rules",
        sa.Column("workspace_id", sa.String(40), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("detectors", sa.JSON, nullable=False),
        sa.Column("custom", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("redaction_rules")
