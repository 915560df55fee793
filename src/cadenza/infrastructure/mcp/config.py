"""How to reach an MCP server: a local process over stdio, or a streamable-HTTP endpoint.

Stdio servers are registered by admins only (DESIGN §6): the command and its arguments go to
``exec`` as a list, never through a shell, so no argument can smuggle in shell syntax. Secrets
stay out of the configuration: an env or header value written ``"env:NAME"`` is read from this
process's environment when the connection is opened, not when the config is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ENV_REF_PREFIX = "env:"


class ConfigError(ValueError):
    """A server configuration cannot be used (for example, a referenced variable is unset)."""


@dataclass(frozen=True)
class StdioServer:
    """A server started as a child process speaking MCP on its stdin/stdout."""

    name: str
    command: str
    args: Sequence[str] = ()
    # Values are literals, or "env:VAR" references resolved at connect time.
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None


@dataclass(frozen=True)
class HttpServer:
    """A server reached over MCP streamable HTTP."""

    name: str
    url: str
    # Values are literals, or "env:VAR" references (for tokens) resolved at connect time.
    headers: Mapping[str, str] = field(default_factory=dict)


ServerConfig = StdioServer | HttpServer


def resolve_refs(
    values: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Replace every ``"env:VAR"`` value by that variable's value; raise if one is unset."""
    source = os.environ if environ is None else environ
    resolved: dict[str, str] = {}
    for key, value in values.items():
        if value.startswith(ENV_REF_PREFIX):
            var = value[len(ENV_REF_PREFIX) :]
            if var not in source:
                raise ConfigError(f"{key} refers to environment variable {var}, which is not set")
            resolved[key] = source[var]
        else:
            resolved[key] = value
    return resolved
