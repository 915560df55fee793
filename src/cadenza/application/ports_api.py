"""Ports the API's use cases need: workspace-scoped queries and the identity store.

Every lookup by id takes the workspace: a row of another workspace is not found. That is the
tenant check, done once here in the data-access layer rather than in each route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cadenza.application.ports import InstanceRow, StoredDefinition
from cadenza.domain.events import Event
from cadenza.domain.json import JSONObject


@dataclass(frozen=True)
class InstanceFilter:
    status: str | None = None
    process_id: str | None = None
    search: str | None = None  # a prefix of the instance id or process id
    cursor: str | None = None  # opaque, from the previous page
    limit: int = 50


@dataclass(frozen=True)
class TaskFilter:
    status: str | None = None
    instance_id: str | None = None
    node_type: str | None = None
    limit: int = 100


@dataclass(frozen=True)
class FeedEntry:
    """One event as the live streams carry it: its position in the feed and its instance."""

    feed_id: int  # orders commits
    seq: int  # the event's place in its instance's journal
    workspace_id: str
    process_id: str
    event: Event

    @property
    def key(self) -> tuple[int, int]:
        """Compares like positions in the feed."""
        return (self.feed_id, self.seq)

    @property
    def position(self) -> str:
        """``<feed id>-<seq>``: what a client resumes after (``FeedCursor.parse`` reads it)."""
        return f"{self.feed_id}-{self.seq}"


@dataclass(frozen=True)
class FeedCursor:
    feed_id: int
    seq: int

    @classmethod
    def parse(cls, text: str) -> FeedCursor:
        """Raise ValueError unless ``text`` is ``<feed id>-<seq>``."""
        head, _, tail = text.partition("-")
        feed_id, seq = int(head), int(tail)
        if feed_id < 0 or seq < 0:
            raise ValueError(text)
        return cls(feed_id, seq)

    def __str__(self) -> str:
        return f"{self.feed_id}-{self.seq}"


class DefinitionConflict(Exception):
    """The process id or version state does not allow the change; the message says why."""


class Queries(Protocol):
    async def processes(self, ws: str) -> list[StoredDefinition]:
        """The newest version of each process of the workspace."""
        ...

    async def versions(self, ws: str, process_id: str) -> list[StoredDefinition]: ...

    async def definition(
        self, ws: str, process_id: str, version: int | None
    ) -> StoredDefinition | None:
        """A version; ``None`` version means the newest one whatever its status."""
        ...

    async def save_draft(self, definition: StoredDefinition) -> StoredDefinition:
        """Store a document: the same content returns its version; else the newest draft is
        replaced or a new draft version made. Raises DefinitionConflict when the process id
        belongs to another workspace."""
        ...

    async def set_status(self, ws: str, process_id: str, version: int, status: str) -> bool:
        """Change one version's status; False when it does not exist in ``ws``."""
        ...

    async def instances(self, ws: str, f: InstanceFilter) -> tuple[list[InstanceRow], str | None]:
        """A page of instances, newest first, and the cursor of the next page."""
        ...

    async def instance(self, ws: str, instance_id: str) -> InstanceRow | None: ...

    async def instance_by_key(self, ws: str, key: str) -> str | None:
        """The id of the instance of ``ws`` an idempotency key (as stored) started, if any."""
        ...

    async def journal(self, ws: str, instance_id: str) -> list[tuple[int, Event]] | None: ...

    async def tasks(self, ws: str, f: TaskFilter) -> list[JSONObject]: ...

    async def task(self, ws: str, task_id: str) -> JSONObject | None: ...

    async def feed_after(self, cursor: FeedCursor | None, limit: int) -> list[FeedEntry]:
        """Events committed after ``cursor`` in commit order (all workspaces: the caller
        filters); ``None`` means from now on (an empty list and no history)."""
        ...

    async def feed_start(self, instance_id: str) -> FeedCursor | None:
        """The position just before the instance's first event (None: no events)."""
        ...

    async def feed_head(self) -> FeedCursor:
        """The position of the newest committed event."""
        ...

    async def ping(self) -> None:
        """Raise when the database cannot be reached."""
        ...


# ---- identity ----------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    id: str
    username: str
    password_hash: str
    is_admin: bool
    disabled: bool
    created_at: float


ACTIVE = "active"
DELETING = "deleting"  # DELETE /workspaces/{id} was accepted; the deletion job is removing it


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    created_at: float
    state: str = ACTIVE  # ACTIVE or DELETING (docs/workspaces.md)

    @property
    def deleting(self) -> bool:
        return self.state != ACTIVE


@dataclass(frozen=True)
class ApiKey:
    id: str
    workspace_id: str
    name: str
    role: str
    key_hash: str
    created_by: str
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked: bool


@dataclass(frozen=True)
class Session:
    """One sign-in: what its refresh token (stored hashed) and access tokens stand for.
    Revoking it stops both at once. Each refresh replaces the refresh token; the one it
    replaced (``previous_hash``, at ``rotated_at``) is kept for the grace window, with the
    new secret sealed under the old one (``next_sealed``) so a concurrent refresh presenting
    the old token receives the same new one (docs/security.md#refresh-token-rotation)."""

    id: str
    user_id: str
    token_hash: str
    created_at: float
    expires_at: float
    revoked: bool
    previous_hash: str | None = None
    rotated_at: float | None = None
    next_sealed: str | None = None


class IdentityConflict(Exception):
    """A name is taken; the message says which."""


class IdentityStore(Protocol):
    async def count_users(self) -> int: ...

    async def add_user(self, user: User) -> None:
        """Raises IdentityConflict when the username is taken."""
        ...

    async def update_user(self, user: User) -> None: ...

    async def user(self, user_id: str) -> User | None: ...

    async def user_by_name(self, username: str) -> User | None: ...

    async def users(self) -> list[User]: ...

    async def add_workspace(self, workspace: Workspace) -> None:
        """Raises IdentityConflict when the name is taken."""
        ...

    async def workspace(self, workspace_id: str) -> Workspace | None: ...

    async def workspaces(self) -> list[Workspace]: ...

    async def set_member(self, workspace_id: str, user_id: str, role: str | None) -> None:
        """Give ``user_id`` ``role`` in the workspace; ``None`` removes the membership."""
        ...

    async def memberships(self, user_id: str) -> dict[str, str]:
        """workspace id -> role"""
        ...

    async def members(self, workspace_id: str) -> dict[str, str]:
        """user id -> role"""
        ...

    async def grant(self, user_id: str, workspace_id: str) -> tuple[User, str | None] | None:
        """The user and their membership role in the workspace (None: not a member), in one
        read; None for an unknown user. Every API-key request asks this of the key's creator."""
        ...

    async def add_key(self, key: ApiKey) -> None: ...

    async def key_by_hash(self, key_hash: str) -> ApiKey | None: ...

    async def key(self, key_id: str) -> ApiKey | None: ...

    async def keys(self, workspace_id: str) -> list[ApiKey]: ...

    async def revoke_key(self, workspace_id: str, key_id: str) -> bool: ...

    async def touch_key(self, key_id: str, at: float) -> None: ...

    async def add_session(self, session: Session) -> None: ...

    async def session(self, session_id: str) -> Session | None: ...

    async def revoke_session(self, session_id: str) -> bool: ...

    async def rotate_session(
        self, session_id: str, old_hash: str, new_hash: str, sealed: str, at: float
    ) -> bool:
        """Replace the session's refresh token hash ``old_hash`` by ``new_hash`` (a
        compare-and-swap: False when the session no longer holds ``old_hash`` or is revoked),
        remembering ``old_hash`` as retired, in one transaction."""
        ...

    async def retired_session(self, token_hash: str) -> str | None:
        """The session a retired refresh token hash belonged to, if any."""
        ...

    async def revoke_sessions(self, user_id: str) -> int:
        """Revoke every session of the user; how many were still active."""
        ...

    async def drop_sessions(self, user_id: str, expired_before: float) -> None:
        """Forget the user's sessions that expired before the given time."""
        ...
