"""What a credential may do *now*: a user's current role in a workspace, and an API key's
role bounded by its creator's current rights.

A key is only as strong as whoever made it is today: its role, lowered to the role its
creator (a user, or the key that minted it) currently has in the key's workspace. Disabling
the creator, removing their membership, lowering their role or revoking the minting key
therefore cuts the key on its next request, with nothing to clean up.
"""

from __future__ import annotations

from cadenza.application.ports_api import ApiKey, IdentityStore, User
from cadenza.application.roles import AuthError, Forbidden, Principal, Role, lesser

MAX_KEY_CHAIN = 8  # at most this many keys in a chain of keys made by keys (below a user)


def granted(user: User, membership: str | None) -> Role | None:
    """The user's role in a workspace given their membership role there (system admins:
    admin everywhere); None when they have none or are disabled."""
    if user.disabled:
        return None
    if user.is_admin:
        return Role.ADMIN
    return Role(membership) if membership is not None else None


def check_key(key: ApiKey | None, now: float) -> ApiKey:
    """The key when it may still be used; AuthError otherwise."""
    if key is None or key.revoked:
        raise AuthError("API key rejected: unknown or revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthError("API key rejected: expired")
    return key


async def key_role(store: IdentityStore, key: ApiKey, now: float) -> tuple[Role, int]:
    """The key's effective role and the length of its chain of minting keys (0: made by a
    user). AuthError when the key or any key above it is unusable, or its creator has no
    rights in the workspace any more."""
    role = Role(check_key(key, now).role)
    current = key
    for depth in range(MAX_KEY_CHAIN):
        kind, _, creator = current.created_by.partition(":")
        if kind == "user":
            found = await store.grant(creator, key.workspace_id)
            creator_role = None if found is None else granted(*found)
            if creator_role is None:
                raise AuthError(
                    "API key rejected: the user who made it is disabled, removed or no "
                    "longer a member of its workspace"
                )
            return lesser(role, creator_role), depth
        if kind != "key":
            break
        parent = check_key(await store.key(creator), now)
        if parent.workspace_id != key.workspace_id:
            break
        role, current = lesser(role, Role(parent.role)), parent
    raise AuthError("API key rejected: the credential that made it is unknown")


async def user_principal(
    store: IdentityStore, user_id: str, session_id: str, workspace: str | None
) -> Principal:
    """The user acting in ``workspace`` (None: their first workspace) in a session.
    AuthError when the user is gone or disabled; Forbidden when they have no role there or
    the workspace does not exist."""
    user: User | None = None
    if workspace is None:
        user = await store.user(user_id)
        roles = await store.memberships(user_id) if user else {}
        if user is not None and not roles and not user.is_admin and not user.disabled:
            raise Forbidden("the user belongs to no workspace")
        workspace = sorted(roles)[0] if roles else "default"
        membership = roles.get(workspace)
    else:
        found = await store.grant(user_id, workspace)
        user, membership = found if found else (None, None)
    if user is None or user.disabled:
        raise AuthError("token rejected: the user no longer exists or is disabled")
    role = granted(user, membership)
    space = None if role is None else await store.workspace(workspace)
    if role is None or space is None:
        raise Forbidden(f"not a member of workspace {workspace!r}")
    return Principal(
        workspace,
        role,
        user_id=user.id,
        is_system_admin=user.is_admin,
        session_id=session_id,
        deleting=space.deleting,
    )


async def key_principal(store: IdentityStore, key: ApiKey, now: float) -> Principal:
    role, _ = await key_role(store, key, now)
    return Principal(key.workspace_id, role, key_id=key.id)


async def check_mint(store: IdentityStore, p: Principal, now: float) -> None:
    """A key may make keys only while the chain of keys above the new one stays bounded."""
    if p.key_id is None:
        raise Forbidden("only a user or an API key can make API keys")
    _, depth = await key_role(store, check_key(await store.key(p.key_id), now), now)
    if depth + 1 >= MAX_KEY_CHAIN:
        raise Forbidden(
            f"keys made by keys nest at most {MAX_KEY_CHAIN} deep; make this key as a user"
        )
