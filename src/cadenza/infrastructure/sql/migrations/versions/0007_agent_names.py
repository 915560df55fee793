"""agent names unique per workspace (and among shared agents), no longer server-wide

A server-wide unique name let one workspace learn, from a 409, that another workspace had
an agent of that name.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SHARED = sa.text("workspace_id IS NULL")
# MySQL has no partial index: a generated column holds the name of shared agents only (NULL
# for the others, and NULLs never collide), and a unique index on it does the partial one's job
_MYSQL_SHARED_NAME = "CASE WHEN workspace_id IS NULL THEN name END"


def _mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_constraint("uq_agents_name", type_="unique")
        batch.create_unique_constraint("uq_agents_workspace_name", ["workspace_id", "name"])
    if _mysql():
        computed = sa.Computed(_MYSQL_SHARED_NAME, persisted=True)
        op.add_column("agents", sa.Column("shared_name", sa.String(length=64), computed))
        op.create_index("uq_agents_shared_name", "agents", ["shared_name"], unique=True)
        return
    op.create_index(
        "uq_agents_shared_name",
        "agents",
        ["name"],
        unique=True,
        sqlite_where=_SHARED,
        postgresql_where=_SHARED,
    )


def downgrade() -> None:
    # fails if two workspaces now have agents of the same name: rename one first
    op.drop_index("uq_agents_shared_name", table_name="agents")
    if _mysql():
        op.drop_column("agents", "shared_name")
    with op.batch_alter_table("agents") as batch:
        batch.drop_constraint("uq_agents_workspace_name", type_="unique")
        batch.create_unique_constraint("uq_agents_name", ["name"])
