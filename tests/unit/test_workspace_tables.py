"""Every table that holds something of a workspace is deleted with it (docs/workspaces.md).

Walks ``tables.metadata``: a table with a ``workspace_id`` column is handled (deleted by the
workspace-deletion job) unless it is marked ``info={"workspace_deletion": "keep"}``, and the
audit log is the only table so marked. A table with an ``instance_id`` column is deleted with
the workspace's instances. A table added without thinking about deletion fails here.
"""

from __future__ import annotations

from cadenza.infrastructure.sql.retention import instance_tables
from cadenza.infrastructure.sql.tables import instances, legal_holds, metadata
from cadenza.infrastructure.sql.workspace_deletion import workspace_tables

HANDLED_AS_OWNER = {"instances"}  # deleted by the purge's instance batches


def test_every_table_with_a_workspace_id_is_deleted_or_explicitly_kept() -> None:
    handled = {t.name for t in workspace_tables()} | HANDLED_AS_OWNER
    kept = {t.name for t in metadata.sorted_tables if t.info.get("workspace_deletion") == "keep"}
    with_column = {t.name for t in metadata.sorted_tables if "workspace_id" in t.c}
    assert kept == {"audit"}, "only the audit log outlives a workspace (retained separately)"
    assert with_column - kept == handled
    assert {"definitions", "agents", "assignments", "api_keys", "memberships"} <= handled
    assert {"workspace_secrets", "workspace_quotas", "quota_spend", "retention_policies"} <= handled


def test_every_table_of_an_instance_goes_with_the_workspace_instances() -> None:
    with_instance = {t for t in metadata.sorted_tables if "instance_id" in t.c}
    by_instance = set(instance_tables()) | {legal_holds}  # holds: by workspace, at the end
    assert with_instance == by_instance
    assert instances not in by_instance
