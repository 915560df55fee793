"""refresh token rotation: the replaced token of each session and every retired token's hash

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("previous_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("rotated_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("next_sealed", sa.String(64), nullable=True))
    op.create_table(
        "session_retired_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("retired_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_session_retired_tokens_session", "session_retired_tokens", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_session_retired_tokens_session", table_name="session_retired_tokens")
    op.drop_table("session_retired_tokens")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("next_sealed")
        batch.drop_column("rotated_at")
        batch.drop_column("previous_hash")
