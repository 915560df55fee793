"""The composition root: the only package that names concrete adapters.

``runtime`` builds the engine's process (templates, egress, metrics, tracing, executors,
the engine); ``store`` the database, its schema and the workspace secrets in it; ``ai`` the
model providers and MCP servers named in settings; ``api`` the FastAPI app's services;
``serve`` the process of ``cadenza serve``; ``standalone`` what the command line uses without
a runtime.

The names below are re-exported lazily (PEP 562): ``from cadenza.bootstrap import build``
imports ``cadenza.bootstrap.runtime`` then, not before, so a module of this package that
needs no runtime (``standalone``, for ``cadenza apply``) does not load the store, the engine
or the API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cadenza.bootstrap.ai import (
        ConfigError,
        build_gateway,
        build_providers,
        reconfigure_provider,
    )
    from cadenza.bootstrap.api import build_app, build_identity, token_secret
    from cadenza.bootstrap.lifecycle import Runtime
    from cadenza.bootstrap.runtime import SystemClock, build, new_id, tune_gc
    from cadenza.bootstrap.store import upgrade_database

__all__ = [
    "ConfigError",
    "Runtime",
    "SystemClock",
    "build",
    "build_app",
    "build_gateway",
    "build_identity",
    "build_providers",
    "new_id",
    "reconfigure_provider",
    "token_secret",
    "tune_gc",
    "upgrade_database",
]

_HOME = {
    "ConfigError": "ai",
    "build_gateway": "ai",
    "build_providers": "ai",
    "reconfigure_provider": "ai",
    "build_app": "api",
    "build_identity": "api",
    "token_secret": "api",
    "Runtime": "lifecycle",
    "SystemClock": "runtime",
    "build": "runtime",
    "new_id": "runtime",
    "tune_gc": "runtime",
    "upgrade_database": "store",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
