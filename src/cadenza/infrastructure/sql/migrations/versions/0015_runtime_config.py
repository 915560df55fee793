"""runtime configuration: model providers, MCP servers and live settings stored per workspace

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runtime_config",
        sa.Column("workspace_id", sa.String(40), primary_key=True),  # "*": shared
        sa.Column("kind", sa.String(16), primary_key=True),  # provider | mcp_server | setting
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),  # JSON, never a credential
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("sealed", sa.LargeBinary, nullable=True),  # the credentials, AES-256-GCM
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("runtime_config")
