"""Table definitions (SQLAlchemy Core). Migrations in ``migrations/`` create the same schema."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

definitions = sa.Table(
    "definitions",
    metadata,
    sa.Column("process_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("content_hash", sa.String(80), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("document", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("workspace_id", sa.String(40), nullable=False, server_default="default"),
    sa.UniqueConstraint("process_id", "content_hash", name="uq_definitions_hash"),
)

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(40), nullable=False, server_default="default"),
    sa.Column("process_id", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("outputs", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("parent_instance_id", sa.String(40), nullable=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    # W3C traceparent of the instance's span, so other processes' task spans join its trace
    sa.Column("trace_context", sa.String(128), nullable=True),
    sa.Index("ix_instances_status", "status"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("instance_id", sa.String(40), nullable=False),
    sa.Column("scope", sa.String(400), nullable=False),
    sa.Column("node_id", sa.String(64), nullable=False),
    sa.Column("node_type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("available_at", sa.Float, nullable=False),
    sa.Column("output", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("ports", sa.JSON, nullable=False),
    sa.Column("handled", sa.Boolean, nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("usage", sa.JSON, nullable=True),
    sa.Column("leased_to", sa.String(80), nullable=True),
    sa.Column("lease_token", sa.String(40), nullable=True),
    sa.Column("lease_expires_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_tasks_instance", "instance_id"),
    sa.Index("ix_tasks_queue", "status", "available_at"),
    sa.Index("ix_tasks_lease", "status", "lease_expires_at"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("instance_id", sa.String(40), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.String(40), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("occurred_at", sa.Float, nullable=False),
)

timers = sa.Table(
    "timers",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("instance_id", sa.String(40), nullable=False),
    sa.Column("task_id", sa.String(40), nullable=True),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("fire_at", sa.Float, nullable=False),
    # a sweeper (its worker's lease holder) took it until then (``Store.claim_timers``)
    sa.Column("claimed_until", sa.Float, nullable=True),
    sa.Column("claimed_by", sa.String(160), nullable=True),
    sa.Index("ix_timers_fire_at", "fire_at"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance_id", sa.String(40), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("capabilities", sa.JSON, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("weight", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("last_seen", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("workspace_id", sa.String(40), nullable=True),
    # names are unique per workspace, and among shared agents (NULL workspace: the partial
    # index, since NULLs never collide in a unique constraint); see migration 0007 (on MySQL:
    # a unique index on a generated column, ``shared_name``, not declared here)
    sa.UniqueConstraint("workspace_id", "name", name="uq_agents_workspace_name"),
    sa.Index(
        "uq_agents_shared_name",
        "name",
        unique=True,
        sqlite_where=sa.text("workspace_id IS NULL"),
        postgresql_where=sa.text("workspace_id IS NULL"),
    ),
)

feed = sa.Table(
    "feed",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance_id", sa.String(40), nullable=False),
    sa.Column("first_seq", sa.Integer, nullable=False),
    sa.Column("last_seq", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_feed_instance", "instance_id"),
)

workspaces = sa.Table(
    "workspaces",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # "active", or "deleting" from DELETE /workspaces/{id} until the deletion job removes the
    # row (migration 0018; sql/workspace_deletion.py); ``deleted_rows``: rows per table so far
    sa.Column("state", sa.String(16), nullable=False, server_default="active"),
    sa.Column("deletion_requested_at", sa.Float, nullable=True),
    sa.Column("deletion_requested_by", sa.String(120), nullable=True),
    sa.Column("deleted_rows", sa.JSON, nullable=True),
    sa.UniqueConstraint("name", name="uq_workspaces_name"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("username", sa.String(80), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("username", name="uq_users_username"),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("user_id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(40), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("created_by", sa.String(40), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("last_used_at", sa.Float, nullable=True),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.UniqueConstraint("key_hash", name="uq_api_keys_hash"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("user_id", sa.String(40), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),  # sha256 of the refresh secret
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False),
    # rotation (0019): the token replaced last, when, and the new secret sealed under it
    sa.Column("previous_hash", sa.String(64), nullable=True),
    sa.Column("rotated_at", sa.Float, nullable=True),
    sa.Column("next_sealed", sa.String(64), nullable=True),
    sa.Index("ix_sessions_user", "user_id"),
)

# every refresh token a rotation replaced (hash only): presenting one is reuse (0019)
session_retired_tokens = sa.Table(
    "session_retired_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("session_id", sa.String(40), nullable=False),
    sa.Column("retired_at", sa.Float, nullable=False),
    sa.Index("ix_session_retired_tokens_session", "session_id"),
)

server_secrets = sa.Table(
    "server_secrets",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

workspace_secrets = sa.Table(
    "workspace_secrets",
    metadata,
    sa.Column("workspace_id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(120), nullable=False),
)

# runtime configuration (providers, MCP servers, live settings); see sql/runtime_config.py
runtime_config = sa.Table(
    "runtime_config",
    metadata,
    sa.Column("workspace_id", sa.String(40), primary_key=True),  # "*": shared
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("key_id", sa.String(16), nullable=True),
    sa.Column("sealed", sa.LargeBinary, nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(120), nullable=False),
)

# one row per leader lease (the agents service's "agent-health"); see sql/leaders.py
leaders = sa.Table(
    "leaders",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(160), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
)

# ---- state shared by the processes of a deployment (migration 0008) ----------------------------
assignments = sa.Table(
    "assignments",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("agent_id", sa.String(40), nullable=False),
    sa.Column("instance_id", sa.String(40), nullable=False),
    sa.Column("task_id", sa.String(40), nullable=False),
    sa.Column("node_id", sa.String(64), nullable=False),
    sa.Column("requires", sa.JSON, nullable=False),
    sa.Column("input", sa.JSON, nullable=True),
    sa.Column("instructions", sa.Text, nullable=True),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("timeout_s", sa.Float, nullable=False),
    sa.Column("deadline", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("output", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("retryable", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_assignments_queue", "agent_id", "status", "created_at"),
    sa.Index("ix_assignments_deadline", "status", "deadline"),
    sa.Index("ix_assignments_attempt", "task_id", "idempotency_key"),
)

tool_approvals = sa.Table(
    "tool_approvals",
    metadata,
    sa.Column("server", sa.String(64), primary_key=True),
    sa.Column("tool", sa.String(128), primary_key=True),
    sa.Column("hash", sa.String(80), primary_key=True),
    sa.Column("approved_by", sa.String(120), nullable=False),
    sa.Column("approved_at", sa.Float, nullable=False),
)

# ---- workspace quotas (migration 0013; sql/quotas.py) -------------------------------------------
workspace_quotas = sa.Table(
    "workspace_quotas",
    metadata,
    sa.Column("workspace_id", sa.String(40), primary_key=True),
    sa.Column("max_running", sa.Integer, nullable=True),
    sa.Column("starts_per_minute", sa.Integer, nullable=True),
    sa.Column("tokens_per_day", sa.BigInteger, nullable=True),
    sa.Column("tokens_per_month", sa.BigInteger, nullable=True),
    sa.Column("cost_per_day", sa.Float, nullable=True),
    sa.Column("cost_per_month", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)
# starts counted per workspace and UTC minute (``minute`` = epoch seconds // 60)
quota_starts = sa.Table(
    "quota_starts",
    metadata,
    sa.Column("workspace_id", sa.String(40), primary_key=True),
    sa.Column("minute", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("starts", sa.Integer, nullable=False),
)
# tokens and cost per workspace and period: a UTC day (YYYY-MM-DD) or month (YYYY-MM)
quota_spend = sa.Table(
    "quota_spend",
    metadata,
    sa.Column("workspace_id", sa.String(40), primary_key=True),
    sa.Column("period", sa.String(10), primary_key=True),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
)
# starts admitted under a running limit whose instance is not committed yet (sql/quotas.py)
quota_holds = sa.Table(
    "quota_holds",
    metadata,
    sa.Column("workspace_id", sa.String(40), primary_key=True),
    sa.Column("hold", sa.String(40), primary_key=True),
    sa.Column("until", sa.Float, nullable=False),
)

# The audit log (docs/audit.md): append-only, kept apart from run history; no
# run-history cleanup touches it, nor does deleting a workspace (``info``: see
# sql/workspace_deletion.py).
audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor_type", sa.String(16), nullable=False),
    sa.Column("actor_id", sa.String(40), nullable=True),
    sa.Column("actor_name", sa.String(80), nullable=True),
    sa.Column("workspace_id", sa.String(40), nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target_type", sa.String(32), nullable=False),
    sa.Column("target_id", sa.String(200), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("client_ip", sa.String(64), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("before", sa.JSON, nullable=True),
    sa.Column("after", sa.JSON, nullable=True),
    sa.Index("ix_audit_workspace", "workspace_id", "id"),
    sa.Index("ix_audit_at", "at"),
    info={"workspace_deletion": "keep"},
)

# ---- retention (migration 0014; see sql/retention.py) -------------------------------------------
# A table with an ``instance_id`` column holds rows of instances: retention deletes them with
# their instance, unless the table says ``info={"retention": "keep"}`` (e.g. an audit log).
retention_policies = sa.Table(
    "retention_policies",
    metadata,
    sa.Column("workspace_id", sa.String(40), primary_key=True),
    sa.Column("finished_s", sa.Float, nullable=True),  # completed and cancelled; NULL: keep
    sa.Column("failed_s", sa.Float, nullable=True),  # NULL: keep
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(120), nullable=False),
)

legal_holds = sa.Table(
    "legal_holds",
    metadata,
    sa.Column("instance_id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("set_by", sa.String(120), nullable=False),
    sa.Column("set_at", sa.Float, nullable=False),
)

# ---- PII redaction (migration 0017; see sql/redaction.py, docs/pii.md) --------------------------
redaction_rules = sa.Table(
    "redaction_rules",
    metadata,
    sa.Column("workspace_id", sa.String(40), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("detectors", sa.JSON, nullable=False),  # names of the built-in detectors on
    sa.Column("custom", sa.JSON, nullable=False),  # [{name, pattern, replacement}]
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(120), nullable=False),
)
