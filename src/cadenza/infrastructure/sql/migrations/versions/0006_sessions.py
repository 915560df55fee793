"""sessions (revocable refresh tokens); the JWT signing secret leaves the database

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sessions_user", "sessions", ["user_id"])
    # The signing key now comes from CADENZA_TOKEN_SECRET(_FILE) or a key file beside the
    # database: a copy of the database alone must not be enough to mint tokens. Tokens signed
    # with the old secret stop working (everyone signs in again).
    op.execute(sa.text("DELETE FROM server_secrets WHERE name = 'jwt'"))


def downgrade() -> None:
    op.drop_index("ix_sessions_user", table_name="sessions")
    op.drop_table("sessions")
