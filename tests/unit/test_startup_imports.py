"""Start-up stays cheap: what ``cadenza worker`` and ``cadenza --help`` import (issue 10, 1a).

Each check runs a fresh interpreter (``sys.modules`` of the test process is shared by every
test) and compares module names, never times: deterministic on a busy machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Never needed by a worker that is not configured to use them.
WORKER_DENYLIST = (
    "fastapi",
    "starlette",
    "uvicorn",
    "strawberry",
    "graphql",
    "mcp",  # the MCP SDK: only when MCP servers are configured
    "openai",  # model SDKs: only when a provider of that kind is configured
    "anthropic",
    "httpx2",  # the SDKs' transport
    "opentelemetry.exporter",  # only with an OTLP endpoint
    "playwright",
    "yaml",  # definition files are read by `cadenza run` / `validate`, not by the worker
    "alembic",  # a database at the newest schema is recognized without it
    "aiohttp",  # egress imports its transport on the first HTTP request
    "cadenza.interfaces.api",
    "cadenza.interfaces.mcp_server",
    "cadenza.bootstrap.api",
    "cadenza.bootstrap.serve",
    "cadenza.entrypoints.cli_serve",
    "cadenza.infrastructure.mcp",
    "cadenza.infrastructure.llm.sdk",
)

# What `cadenza worker` runs: the CLI module, then the runtime it builds and starts, with its
# ops port (the agents service's is the same runtime, another role).
WORKER = """
import asyncio, json, sys
import cadenza.entrypoints.cli
from cadenza.application.readiness import ServiceRole
from cadenza.bootstrap import build
from cadenza.bootstrap.roles import open_ops
from cadenza.settings import Settings

async def main():
    runtime = await build(Settings(database_url=sys.argv[1]), role=ServiceRole.WORKER)
    ops = await open_ops(runtime, "127.0.0.1", 0)
    await runtime.start()
    await ops.close()
    await runtime.close()

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""

HELP = """
import json, sys
import cadenza.entrypoints.cli
print(json.dumps(sorted(sys.modules)))
"""

# What `cadenza apply|start|ps|logs` import: the CLI, its HTTP client and the file readers.
CLIENT = """
import json, sys
import cadenza.entrypoints.cli, cadenza.entrypoints.cli_client, cadenza.bootstrap.standalone
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(code: str, cwd: Path, *args: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
    env["HOME"] = str(cwd)  # no user configuration leaks in
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,  # no cadenza.toml of the repository either
        env=env,
        timeout=120,
        check=True,
    )
    names = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(names, list)
    return {str(n) for n in names}


def _loaded(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def test_worker_runtime_imports_no_api_stack_and_no_unconfigured_sdk(tmp_path: Path) -> None:
    """A worker (re)started against a database already at the newest schema."""
    url = f"sqlite:///{tmp_path}/worker.db"
    migrate = [sys.executable, "-m", "cadenza", "db", "upgrade", "--database-url", url]
    subprocess.run(migrate, capture_output=True, cwd=tmp_path, timeout=120, check=True)
    modules = _modules_after(WORKER, tmp_path, url)
    assert "cadenza.application.engine" in modules  # the probe saw the runtime being built
    assert "cadenza.interfaces.ops_http" in modules  # ... and its ops port
    assert "sqlalchemy" in modules
    assert {p: _loaded(modules, p) for p in WORKER_DENYLIST} == {p: [] for p in WORKER_DENYLIST}


def test_cli_module_imports_no_runtime(tmp_path: Path) -> None:
    """``cadenza --help`` (and every command's parsing) builds nothing: the commands import
    the composition root, the store and the engine inside their functions."""
    modules = _modules_after(HELP, tmp_path)
    assert "typer" in modules
    heavy = ("sqlalchemy", "pydantic", "aiohttp", "jinja2", "cadenza.bootstrap", "cadenza.settings")
    assert {p: _loaded(modules, p) for p in heavy} == {p: [] for p in heavy}
    assert {p: _loaded(modules, p) for p in WORKER_DENYLIST} == {p: [] for p in WORKER_DENYLIST}


def test_client_commands_import_no_runtime(tmp_path: Path) -> None:
    """The commands that talk to a server read files through ``cadenza.bootstrap.standalone``:
    importing it (and so the ``cadenza.bootstrap`` package) builds and loads no runtime."""
    modules = _modules_after(CLIENT, tmp_path)
    assert {"aiohttp", "yaml", "cadenza.bootstrap"} <= modules
    heavy = (
        "sqlalchemy",
        "jinja2",
        "cryptography",
        "fastapi",
        "uvicorn",
        "cadenza.bootstrap.runtime",
        "cadenza.bootstrap.lifecycle",
        "cadenza.bootstrap.ai",
        "cadenza.bootstrap.api",
        "cadenza.application.engine",
        "cadenza.infrastructure.sql",
    )
    assert {p: _loaded(modules, p) for p in heavy} == {p: [] for p in heavy}


def test_llm_package_imports_no_sdk(tmp_path: Path) -> None:
    """The offline provider and the resilience wrapper (always built) pull in no model SDK."""
    code = (
        "import json, sys\n"
        "import cadenza.infrastructure.llm.offline, cadenza.infrastructure.llm.resilient\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    modules = _modules_after(code, tmp_path)
    assert (_loaded(modules, "openai"), _loaded(modules, "anthropic")) == ([], [])
