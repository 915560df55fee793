"""Roles, permissions and the principal: who is calling and what they may do.

Roles are per workspace (a membership, or the role an API key was made with); a system admin
acts as ``admin`` in every workspace. The permission table below is the whole policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cadenza.domain.errors import Conflict


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    EDITOR = "editor"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"  # definitions, instances, tasks, agents, catalogs, streams
    RUN = "run"  # start, cancel, retry, signal, approve; worker poll/complete; heartbeats
    EDIT = "edit"  # save, publish, archive and delete definitions
    AGENTS = "agents"  # register, change, drain and remove agents; test providers
    MANAGE = "manage"  # the workspace's API keys and members
    SYSTEM = "system"  # users, workspaces, settings, MCP tool approvals (system admins)


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.RUN}),
    Role.EDITOR: frozenset({Permission.READ, Permission.RUN, Permission.EDIT, Permission.AGENTS}),
    Role.ADMIN: frozenset(set(Permission) - {Permission.SYSTEM}),
}
_RANK = {role: rank for rank, role in enumerate(Role)}


def lesser(a: Role, b: Role) -> Role:
    """The role with fewer rights (roles are ordered: each has every right of the ones below)."""
    return a if _RANK[a] <= _RANK[b] else b


def outranks(a: Role, b: Role) -> bool:
    return _RANK[a] > _RANK[b]


class AuthError(Exception):
    """No valid credentials (401)."""


class Forbidden(Exception):
    """Valid credentials without the right (403)."""


@dataclass(frozen=True)
class Principal:
    """The caller of one request (or stream): a user signed in through a session, or an API
    key. ``session_id`` lets a stream re-check that the session was not revoked."""

    workspace_id: str
    role: Role
    user_id: str | None = None
    key_id: str | None = None
    is_system_admin: bool = False
    session_id: str | None = None
    # the workspace is being deleted (docs/workspaces.md): it can still be read, nothing in
    # it can be changed or started
    deleting: bool = False

    @property
    def subject(self) -> str:
        return f"user:{self.user_id}" if self.user_id else f"key:{self.key_id}"

    def can(self, permission: Permission) -> bool:
        if permission is Permission.SYSTEM:
            return self.is_system_admin
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        """Forbidden without the right; Conflict for a change in a workspace being deleted
        (every route checks a permission, so this one check closes them all)."""
        self.require_to_read(permission)
        if self.deleting and permission not in (Permission.READ, Permission.SYSTEM):
            raise Conflict(f"workspace {self.workspace_id!r} is being deleted")

    def require_to_read(self, permission: Permission) -> None:
        """Forbidden without the right; a read guarded by a stronger right than ``READ`` (the
        progress of a deletion, for its admins) stays allowed while the workspace is deleted."""
        if not self.can(permission):
            raise Forbidden(f"role {self.role.value!r} lacks the {permission.value!r} permission")
