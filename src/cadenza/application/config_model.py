"""What runtime configuration is made of: stored rows, provider and MCP server specs, and the
ports of their store and validator (``runtime_config`` is the service over them).

A row holds one provider, MCP server or live setting of one scope: a workspace id, or
``SHARED`` ("*") for the whole server. Its ``body`` is public JSON; everything that is a
credential (a provider's API key; every value of an MCP server's ``env`` and ``headers``) is
sealed together, as one JSON object, under the workspace secrets key ring, bound to the
row's scope, kind and name, so a ciphertext copied to another row does not open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from cadenza.domain.json import JSONObject

SHARED = "*"  # the scope of configuration every workspace sees (system admins edit it)
PROVIDER = "provider"
MCP_SERVER = "mcp_server"
SETTING = "setting"
KINDS = (PROVIDER, MCP_SERVER, SETTING)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
# Settings a system admin may change while the server runs; each is applied by every process
# on the next reload (docs/configuration.md, "Runtime configuration"). Nothing else is live.
LIVE_SETTINGS = (
    "default_provider",
    "mcp_call_timeout_s",
    "mcp_breaker_failures",
    "mcp_breaker_reset_s",
)


def name_reason(name: str) -> str | None:
    """Why ``name`` cannot name a provider or MCP server, or None."""
    if _NAME.match(name) is None:
        return (
            "a name has 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return None


class ConfigInvalid(ValueError):
    """The configuration cannot be saved: bad values or a failed validation (422)."""


class ConfigReadOnly(Exception):
    """The name is defined by the environment or cadenza.toml (409)."""


@dataclass(frozen=True)
class ConfigRow:
    """One stored item. ``sealed`` holds its credentials (None: it has none)."""

    workspace_id: str
    kind: str
    name: str
    body: JSONObject
    key_id: str | None
    sealed: bytes | None
    revision: int
    updated_at: float
    updated_by: str


@dataclass(frozen=True)
class ProviderSpec:
    """A model provider as stored (``api_key``: the credential, never shown)."""

    name: str
    kind: str = "openai"  # openai | anthropic | offline
    base_url: str | None = None
    default_model: str = ""
    pool_size: int | None = 100
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)  # model -> per 1k
    api_key: str | None = None


@dataclass(frozen=True)
class McpSpec:
    """An MCP server: ``command`` (+ ``args``, ``env``) or ``url`` (+ ``headers``). Every
    ``env`` and ``headers`` value is a credential: sealed, and shown by name only."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolved:
    """A row with its credentials opened: what a process applies."""

    workspace_id: str
    kind: str
    name: str
    revision: int
    provider: ProviderSpec | None = None
    mcp: McpSpec | None = None
    value: object = None  # a live setting's value
    updated_at: float = 0.0  # with ``revision``: a row deleted and made again differs


class ConfigStore(Protocol):
    """Stored configuration rows (adapters: ``sql.runtime_config``, ``config_memory``). A
    write joins the audit row of the change in progress (``write_pending``)."""

    async def rows(self, kind: str | None = None) -> list[ConfigRow]:
        """Every row (of ``kind``), ordered by workspace, kind and name."""
        ...

    async def row(self, workspace_id: str, kind: str, name: str) -> ConfigRow | None: ...

    async def put(self, row: ConfigRow) -> ConfigRow:
        """Insert or replace; the stored row has the next revision (``row.revision`` ignored)."""
        ...

    async def delete(self, workspace_id: str, kind: str, name: str) -> bool: ...

    async def sealed_not_under(self, key_id: str, limit: int) -> list[ConfigRow]:
        """Up to ``limit`` rows with credentials sealed under another key than ``key_id``
        (``cadenza secrets rotate``), in key order."""
        ...

    async def reseal(self, old: ConfigRow, key_id: str, sealed: bytes) -> bool:
        """Replace ``old``'s ciphertext unless the row changed meanwhile (then False); the
        revision stays (the credentials are the same, nothing is re-applied)."""
        ...


class ConfigValidator(Protocol):
    """Checks candidate configuration before it is saved (adapter: ``bootstrap.config``).
    Each returns why it failed, or None."""

    async def provider(self, spec: ProviderSpec) -> str | None:
        """A test call (list the models) through a client built from ``spec``."""
        ...

    async def mcp_server(self, spec: McpSpec) -> str | None:
        """A handshake and ``tools/list`` with a timeout."""
        ...

    async def url(self, url: str) -> str | None:
        """The URL policy for API-supplied URLs (no private addresses unless allowed)."""
        ...

    def setting(self, name: str, value: object) -> tuple[object, str | None]:
        """(the value as the setting's type, why it is refused or None)."""
        ...


@dataclass(frozen=True)
class Environment:
    """What the environment and cadenza.toml define: read-only through the API."""

    providers: dict[str, JSONObject] = field(default_factory=dict)  # name -> public view
    mcp_servers: dict[str, JSONObject] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)  # live settings' values now
    fixed_settings: frozenset[str] = frozenset()  # set explicitly there: read-only
