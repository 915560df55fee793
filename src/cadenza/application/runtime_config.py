"""Runtime configuration: providers, MCP servers and live settings stored in the database,
validated before they are saved, their credentials sealed, announced to every process.

Saving is two steps so a route can audit only the change: ``prepare_*`` checks the candidate
(names, the URL policy, a provider test call or an MCP handshake) and seals its credentials
into a row; ``save`` stores it (the audit row joins that transaction) and announces it. What
the environment or cadenza.toml defines is listed with ``source: environment`` and cannot be
changed here (``ConfigReadOnly``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from cadenza.application.config_codec import (
    as_json,
    mcp_body,
    mcp_spec,
    provider_body,
    provider_spec,
    text_or_none,
)
from cadenza.application.config_model import (
    LIVE_SETTINGS,
    MCP_SERVER,
    PROVIDER,
    SETTING,
    SHARED,
    ConfigInvalid,
    ConfigReadOnly,
    ConfigRow,
    ConfigStore,
    ConfigValidator,
    Environment,
    McpSpec,
    ProviderSpec,
    Resolved,
    name_reason,
)
from cadenza.application.config_sealing import ConfigSealer, masked
from cadenza.application.ports import Clock
from cadenza.application.secrets import Cipher, SecretsUnavailable
from cadenza.domain.errors import NotFound
from cadenza.domain.json import JSON, JSONObject

log = logging.getLogger(__name__)
ENV_REF = "env:"  # environment references, allowed in cadenza.toml only
Announce = Callable[[str, str, str], Awaitable[None]]  # (workspace_id, kind, name)


@dataclass(frozen=True)
class ConfigView:
    """One item as admins see it: never a credential (``has_api_key``, ``env_names``...)."""

    kind: str
    name: str
    source: str  # environment | database
    workspace_id: str | None  # None: environment; "*": shared
    body: JSONObject
    revision: int = 0
    updated_at: float | None = None
    updated_by: str | None = None


class RuntimeConfig:
    def __init__(
        self,
        store: ConfigStore,
        cipher: Cipher,
        clock: Clock,
        environment: Environment,
        validator: ConfigValidator,
        announce: Announce,
    ) -> None:
        self._store = store
        self._sealer = ConfigSealer(cipher, clock)
        self.environment = environment
        self._validator = validator
        self._announce = announce
        self.local: list[Callable[[], None]] = []  # this process's appliers: reload now
        self._unopened: set[tuple[str, str, str, int]] = set()

    # ---- reading ---------------------------------------------------------------------------

    async def items(self, kind: str, workspace_id: str) -> list[ConfigView]:
        """The environment's items, then the shared ones, then ``workspace_id``'s."""
        env = self._env(kind)
        out = [ConfigView(kind, n, "environment", None, dict(b)) for n, b in sorted(env.items())]
        scopes = (SHARED, workspace_id)
        rows = [r for r in await self._store.rows(kind) if r.workspace_id in scopes]
        rows.sort(key=lambda r: (r.workspace_id != SHARED, r.name))
        return out + [self._view(r) for r in rows]

    async def get(self, kind: str, scope: str, name: str) -> ConfigView:
        row = await self._store.row(scope, kind, name)
        if row is None:
            env = self._env(kind).get(name)
            if env is not None:
                return ConfigView(kind, name, "environment", None, dict(env))
            raise NotFound(f"no {kind.replace('_', ' ')} {name!r} in this scope")
        return self._view(row)

    async def settings(self) -> list[ConfigView]:
        """Every live setting: its value now, and where it comes from."""
        rows = {r.name: r for r in await self._store.rows(SETTING) if r.workspace_id == SHARED}
        out = []
        for name in LIVE_SETTINGS:
            row = rows.get(name)
            if row is not None and name not in self.environment.fixed_settings:
                out.append(self._view(row))
                continue
            value: JSON = as_json(self.environment.settings.get(name))
            source = "environment" if name in self.environment.fixed_settings else "default"
            out.append(ConfigView(SETTING, name, source, None, {"value": value}))
        return out

    async def resolved(self) -> list[Resolved]:
        """Every stored row with its credentials opened (each process applies these); a row
        whose credentials do not open (its key is gone, the data was tampered with) is
        logged and left out, the others still apply."""
        out = []
        for row in await self._store.rows():
            try:
                creds = self._sealer.open(row)
            except SecretsUnavailable as exc:
                mark = (row.workspace_id, row.kind, row.name, row.revision)
                if mark in self._unopened:
                    continue
                self._unopened.add(mark)  # said once per revision, not on every reload
                log.warning(
                    "runtime configuration of %s %r (workspace %s) cannot be opened: %s",
                    row.kind,
                    row.name,
                    row.workspace_id,
                    exc,
                )
                continue
            base = Resolved(row.workspace_id, row.kind, row.name, row.revision)
            base = replace(base, updated_at=row.updated_at)
            if row.kind == PROVIDER:
                out.append(replace(base, provider=provider_spec(row, creds)))
            elif row.kind == MCP_SERVER:
                out.append(replace(base, mcp=mcp_spec(row, creds)))
            else:
                out.append(replace(base, value=row.body.get("value")))
        return out

    # ---- preparing a change ----------------------------------------------------------------

    async def prepare_provider(
        self, scope: str, spec: ProviderSpec, by: str, *, validate: bool = True
    ) -> ConfigRow:
        """A checked, sealed row for ``spec``; ``api_key`` None keeps the stored key."""
        self._writable(PROVIDER, spec.name)
        old = await self._store.row(scope, PROVIDER, spec.name)
        if spec.api_key is None and old is not None:
            spec = replace(spec, api_key=text_or_none(self._sealer.open(old).get("api_key")))
        if spec.kind == "openai" and not spec.base_url:
            raise ConfigInvalid("base_url is required for kind openai")
        if spec.base_url:
            await self._url(spec.base_url)
        if validate:
            reason = await self._validator.provider(spec)
            if reason is not None:
                reason = masked(reason, [spec.api_key or ""])  # an upstream may echo it
                raise ConfigInvalid(f"provider {spec.name!r} failed its test call: {reason}")
        creds: JSONObject = {} if spec.api_key is None else {"api_key": spec.api_key}
        return self._sealer.row(scope, PROVIDER, spec.name, provider_body(spec), creds, by)

    async def prepare_mcp(
        self,
        scope: str,
        spec: McpSpec,
        by: str,
        *,
        keep_env: bool = False,
        keep_headers: bool = False,
        validate: bool = True,
    ) -> ConfigRow:
        """A checked, sealed row for ``spec``; ``keep_*`` reuse the stored values."""
        self._writable(MCP_SERVER, spec.name)
        if bool(spec.command) == bool(spec.url):
            raise ConfigInvalid("an MCP server has either a command or a url")
        old = await self._store.row(scope, MCP_SERVER, spec.name)
        if old is not None and (keep_env or keep_headers):
            stored = mcp_spec(old, self._sealer.open(old))
            spec = replace(
                spec,
                env=stored.env if keep_env else spec.env,
                headers=stored.headers if keep_headers else spec.headers,
            )
        refs = [k for k, v in {**spec.env, **spec.headers}.items() if v.startswith(ENV_REF)]
        if refs:  # the server's own environment is not the workspace's to read
            raise ConfigInvalid(
                f"{', '.join(sorted(refs))}: 'env:' references are not allowed here; give the value"
            )
        if spec.url:
            await self._url(spec.url)
        if validate:
            reason = await self._validator.mcp_server(spec)
            if reason is not None:
                reason = masked(reason, [*spec.env.values(), *spec.headers.values()])
                raise ConfigInvalid(f"MCP server {spec.name!r} failed its handshake: {reason}")
        creds: JSONObject = {"env": dict(spec.env), "headers": dict(spec.headers)}
        return self._sealer.row(scope, MCP_SERVER, spec.name, mcp_body(spec), creds, by)

    async def prepare_setting(self, name: str, value: object, by: str) -> ConfigRow:
        if name not in LIVE_SETTINGS:
            raise NotFound(f"{name!r} is not a live setting (live: {', '.join(LIVE_SETTINGS)})")
        if name in self.environment.fixed_settings:
            raise ConfigReadOnly(
                f"setting {name!r} is set by the environment or cadenza.toml; change it there"
            )
        typed, reason = self._validator.setting(name, value)
        if reason is not None:
            raise ConfigInvalid(f"setting {name!r}: {reason}")
        if name == "default_provider":
            shared = {r.name for r in await self._store.rows(PROVIDER) if r.workspace_id == SHARED}
            if typed not in set(self.environment.providers) | shared:
                raise ConfigInvalid(f"default_provider {typed!r} names no shared provider")
        return self._sealer.row(SHARED, SETTING, name, {"value": as_json(typed)}, {}, by)

    # ---- changing --------------------------------------------------------------------------

    async def save(self, row: ConfigRow) -> ConfigView:
        """Store ``row`` (inside the caller's audited change) and tell every process."""
        stored = await self._store.put(row)
        await self._changed(row.workspace_id, row.kind, row.name)
        return self._view(stored)

    async def delete(self, scope: str, kind: str, name: str) -> None:
        if kind != SETTING:
            self._writable(kind, name)
        if kind == PROVIDER and scope == SHARED:
            default = await self._store.row(SHARED, SETTING, "default_provider")
            if default is not None and default.body.get("value") == name:
                raise ConfigReadOnly(
                    f"provider {name!r} is the default_provider; change that setting first"
                )
        if not await self._store.delete(scope, kind, name):
            raise NotFound(f"no {kind.replace('_', ' ')} {name!r} in this scope")
        await self._changed(scope, kind, name)

    async def rotate(self, batch: int = 100) -> int:
        """Re-seal every row's credentials under the current key (``cadenza secrets rotate``)
        in batches, each row compare-and-swapped (a concurrent save wins; a row already under
        the current key is never read); returns how many changed. The revision stays: the
        credentials are the same, so no process re-applies anything."""
        done = 0
        while rows := await self._store.sealed_not_under(self._sealer.current_key_id(), batch):
            changed = 0
            for row in rows:
                resealed = self._sealer.resealed(row)
                if resealed is not None and resealed.key_id and resealed.sealed is not None:
                    changed += await self._store.reseal(row, resealed.key_id, resealed.sealed)
            done += changed
            if not changed:  # rewritten meanwhile by a process with another key ring: stop
                break
        return done

    async def workspace_removed(self, workspace_id: str) -> None:
        """A deleted workspace's rows are gone (the deletion job): every process reloads now
        rather than at its next periodic reload (``ConfigChanged``, kind ``*``)."""
        await self._changed(workspace_id, "*", "")

    async def _changed(self, workspace_id: str, kind: str, name: str) -> None:
        for reload in self.local:
            reload()
        await self._announce(workspace_id, kind, name)

    # ---- helpers ---------------------------------------------------------------------------

    def _env(self, kind: str) -> dict[str, JSONObject]:
        return self.environment.providers if kind == PROVIDER else self.environment.mcp_servers

    def _writable(self, kind: str, name: str) -> None:
        reason = name_reason(name)
        if reason is not None:
            raise ConfigInvalid(reason)
        if name in self._env(kind):
            raise ConfigReadOnly(
                f"{kind.replace('_', ' ')} {name!r} is defined by the environment or "
                "cadenza.toml: it is read-only here; change it there, or use another name"
            )

    async def _url(self, url: str) -> None:
        reason = await self._validator.url(url)
        if reason is not None:
            raise ConfigInvalid(f"URL refused: {reason}")

    def _view(self, row: ConfigRow) -> ConfigView:
        body = dict(row.body)
        if row.kind == PROVIDER:
            body["has_api_key"] = row.sealed is not None
        return ConfigView(
            row.kind,
            row.name,
            "database",
            row.workspace_id,
            body,
            row.revision,
            row.updated_at,
            row.updated_by,
        )
