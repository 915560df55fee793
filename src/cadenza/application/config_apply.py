"""Applying the stored runtime configuration in a process, without a restart.

Every process (API, worker, ``serve``) runs one ``ConfigApplier``. It reads every stored row
(a small table), compares each row's revision with what it applied last, and rebuilds only
what changed: a provider's client (``Providers.replace``; calls in flight finish on the old
one), an MCP server's pooled session (``McpSlots``), the live settings. It reloads when told
(a ``ConfigChanged`` message on the bus, or a save in this process), every ``refresh_s``
as a fallback for a lost message, and when it (re)joins the bus.

A row that cannot be applied (a URL the policy now refuses, a key that no longer opens) is
logged and left out: tasks naming it fail with "no model provider named ...".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from cadenza.application.config_model import (
    MCP_SERVER,
    PROVIDER,
    SETTING,
    SHARED,
    McpSpec,
    ProviderSpec,
    Resolved,
)
from cadenza.application.mcp_scopes import mcp_key
from cadenza.application.outage_log import OutageLog
from cadenza.application.ports_ai import ModelProvider, ToolGateway
from cadenza.application.providers import Price, ProviderInfo, Providers

log = logging.getLogger(__name__)

# (spec, scope) -> client: a workspace's own provider is kept out of system-wide metrics
ProviderBuilder = Callable[[ProviderSpec, str], tuple[ModelProvider, ProviderInfo]]


class McpSlots(Protocol):
    """The process's MCP sessions, changed while it runs (adapter: ``bootstrap.mcp_live``;
    None in a process whose MCP calls go through the MCP proxy, which applies them)."""

    async def put(self, key: str, spec: McpSpec) -> None:
        """Add the server, or replace its pooled session with one for ``spec``."""
        ...

    async def remove(self, key: str) -> None: ...

    def reconfigure(self, values: dict[str, object]) -> None:
        """Apply the live MCP settings (breaker and timeout values)."""
        ...


@runtime_checkable
class ScopedTools(Protocol):
    """A gateway that reaches workspaces' own MCP servers: ``bootstrap.mcp_live.LiveGateway``
    (it holds them) and ``ProxyToolGateway`` (the MCP proxy holds them; each request names
    the workspace)."""

    def for_workspace(self, workspace_id: str) -> ToolGateway:
        """The gateway as a node of ``workspace_id`` sees it: a server name reaches the
        workspace's own stored server first, else the shared or environment one; a name
        holding the scope mark is refused, so no node reaches another workspace's server."""
        ...


def gateway_for(gateway: ToolGateway, workspace_id: str) -> ToolGateway:
    """What an executor uses for a task of ``workspace_id``."""
    return gateway.for_workspace(workspace_id) if isinstance(gateway, ScopedTools) else gateway


class ConfigApplier:
    def __init__(
        self,
        load: Callable[[], Awaitable[list[Resolved]]],
        providers: Providers | None,
        build_provider: ProviderBuilder | None,
        mcp: McpSlots | None,
        base_settings: dict[str, object],
        refresh_s: float,
        fixed: frozenset[str] = frozenset(),
    ) -> None:
        """``base_settings``: the live settings' values from the environment; ``fixed``:
        those set there explicitly, which a stored row never overrides. ``providers`` None:
        this process calls no model (the MCP proxy) and applies MCP servers only."""
        self._load = load
        self._providers = providers
        self._build = build_provider
        self._mcp = mcp
        self._base = dict(base_settings)
        self._refresh_s = refresh_s
        self._fixed = fixed
        # providers and MCP servers applied now: (revision, updated_at) of their rows
        self._applied: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._failed: dict[tuple[str, str, str], tuple[int, float]] = {}  # not retried
        self._settings_marks: tuple[tuple[str, str, int], ...] = ()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0  # completed reloads (tests, metrics)
        self.mcp_servers: set[str] = set()  # gateway names of stored servers applied now

    def poke(self) -> None:
        """Reload soon (a change was announced, or made here)."""
        self._wake.set()

    def changed(self, workspace_id: str, kind: str, name: str) -> None:
        self.poke()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="config-reload")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        outage = OutageLog(log, "runtime configuration reload")
        while True:
            with outage.round():  # the store is away: keep what is applied, try again later
                await self.reload()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_s):
                    await self._wake.wait()
            self._wake.clear()

    async def reload(self) -> None:
        """Read every row and apply what changed since the last reload."""
        async with self._lock:
            rows = await self._load()
            seen: dict[tuple[str, str, str], Resolved] = {
                (r.workspace_id, r.kind, r.name): r for r in rows
            }
            for key in [k for k in self._applied if k not in seen]:  # deleted since
                await self._remove(key)
                del self._applied[key]
            for key, row in seen.items():
                mark = (row.revision, row.updated_at)
                if row.kind == SETTING or mark in (self._applied.get(key), self._failed.get(key)):
                    continue  # unchanged since applied, or since it failed (said once)
                if await self._apply(row):
                    self._applied[key] = mark
                    self._failed.pop(key, None)
                else:
                    self._failed[key] = mark
            settings = [r for r in rows if r.kind == SETTING]
            marks = tuple(sorted((r.workspace_id, r.name, r.revision) for r in settings))
            if marks != self._settings_marks or self.reloads == 0:
                self._settings(settings)
                self._settings_marks = marks
            self.reloads += 1

    def _mine(self, row: Resolved) -> bool:
        """Whether this process applies rows of ``row.kind`` (a worker behind the MCP proxy
        holds no MCP sessions; the proxy calls no model)."""
        if row.kind == PROVIDER:
            return self._providers is not None and self._build is not None
        return row.kind != MCP_SERVER or self._mcp is not None

    async def _apply(self, row: Resolved) -> bool:
        if not self._mine(row):
            return True  # nothing to apply here; not said in the log either
        providers, build = self._providers, self._build
        try:
            if (
                row.kind == PROVIDER
                and row.provider is not None
                and providers is not None
                and build is not None
            ):
                spec = row.provider
                client, info = build(spec, row.workspace_id)
                prices = {m: Price(p, c) for m, (p, c) in spec.prices.items()}
                await providers.replace(
                    spec.name,
                    client,
                    spec.default_model,
                    info,
                    scope=row.workspace_id,
                    prices=prices,
                )
            elif row.kind == MCP_SERVER and row.mcp is not None and self._mcp is not None:
                server = mcp_key(row.workspace_id, row.name)
                await self._mcp.put(server, row.mcp)
                self.mcp_servers.add(server)
            log.info(
                "runtime configuration applied: %s %r (%s)", row.kind, row.name, row.workspace_id
            )
            return True
        except Exception as exc:
            log.warning(
                "runtime configuration of %s %r (workspace %s) not applied: %s",
                row.kind,
                row.name,
                row.workspace_id,
                exc,
            )
            key = (row.workspace_id, row.kind, row.name)
            if key in self._applied:  # its previous configuration is not kept either
                await self._remove(key)
                del self._applied[key]
            return False

    async def _remove(self, key: tuple[str, str, str]) -> None:
        workspace_id, kind, name = key
        removed = False
        providers = self._providers
        if kind == PROVIDER and providers is not None and (workspace_id, name) in providers.scoped:
            await providers.replace(name, None, scope=workspace_id)
            removed = True
        elif kind == MCP_SERVER and self._mcp is not None:
            server = mcp_key(workspace_id, name)
            if server in self.mcp_servers:
                await self._mcp.remove(server)
                self.mcp_servers.discard(server)
                removed = True
        if removed:
            log.info("runtime configuration removed: %s %r (%s)", kind, name, workspace_id)

    def _settings(self, rows: list[Resolved]) -> None:
        values = dict(self._base)
        values.update(
            {
                r.name: r.value
                for r in rows
                if r.workspace_id == SHARED and r.name not in self._fixed
            }
        )
        default = values.get("default_provider")
        if isinstance(default, str) and default and self._providers is not None:
            self._providers.default = default
        if self._mcp is not None:
            self._mcp.reconfigure(values)
