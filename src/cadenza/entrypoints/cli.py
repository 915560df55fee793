"""The ``cadenza`` command line: serve, worker, agents, mcp-proxy, db upgrade here; run and
validate (cli_local), the server's client commands and the host's key commands in their
own modules.

Start-up time is recovery time (a crashed worker, a restarted pod): this module imports only
typer and rich at the top; each command imports what it needs inside its function, so
``cadenza --help`` builds nothing and ``cadenza worker`` never imports the API stack (FastAPI,
uvicorn, strawberry), the MCP SDK or a model SDK it is not configured to use. Guarded by
tests/unit/test_startup_imports.py.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from cadenza.entrypoints import cli_local
from cadenza.entrypoints.cli_local import DatabaseOpt, _fail, _settings, err

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Cadenza: durable AI workflows.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")
cli_local.register(app)  # validate, run: listed first, as before they moved

HostOpt = Annotated[str, typer.Option(help="address of the ops port")]
OpsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--port",
        min=0,
        max=65535,
        help="ops port serving /health, /health/readiness and /metrics; 0 picks a free one "
        "(printed); none: no ops port",
    ),
]


def _run_role(role: str, database_url: str | None, host: str, port: int | None) -> None:
    from cadenza.application.readiness import ServiceRole
    from cadenza.bootstrap.roles import OpsAddress, run_role

    settings = _settings(database_url)

    def announce(line: str) -> None:
        typer.echo(line, err=True)  # unwrapped, one line: scripts and tests read the port

    try:
        asyncio.run(run_role(settings, ServiceRole(role), OpsAddress(host, port), announce))
    except (ValueError, OSError) as exc:  # a setting it cannot use, a port it cannot bind
        raise _fail(str(exc)) from exc


@app.command()
def worker(
    database_url: DatabaseOpt = None, host: HostOpt = "127.0.0.1", port: OpsPortOpt = None
) -> None:
    """Run the engine (commit loop, executors, sweeper, timers) until stopped; drives every
    unfinished instance. E.g. cadenza worker --port 9101."""
    _run_role("worker", database_url, host, port)


@app.command()
def agents(
    database_url: DatabaseOpt = None, host: HostOpt = "127.0.0.1", port: OpsPortOpt = None
) -> None:
    """Run the agent-management service (agent health checks, assignment bookkeeping) until
    stopped; one instance at a time is active, others stand by. E.g. cadenza agents --port
    9102."""
    _run_role("agents", database_url, host, port)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default 8080; 0 picks a free port")] = None,
    role: Annotated[
        str, typer.Option(help="all: API, engine and agent checks; api: the API only")
    ] = "all",
    publish: Annotated[
        list[Path] | None,
        typer.Option("--publish", help="publish these definitions into workspace 'default'"),
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Serve the API, the web console and the engine (SQLite by default, zero setup)."""
    from cadenza.entrypoints import cli_serve

    cli_serve.command(_settings(database_url), host, port, role, publish or [])


@app.command("mcp-proxy")
def mcp_proxy(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="0 picks a free port")] = 9103,
) -> None:
    """Serve the configured MCP servers' tools to workers (MCP streamable HTTP at /mcp, bearer
    CADENZA_MCP_PROXY_TOKEN), with /health, /health/readiness and /metrics on the same port."""
    from cadenza.bootstrap import ConfigError
    from cadenza.bootstrap.mcp_proxy import proxy_server
    from cadenza.settings import Settings

    try:
        server = proxy_server(Settings(), host, port)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    err.print(f"MCP proxy on http://{host}:{port}/mcp", highlight=False)
    asyncio.run(server.serve())
    raise typer.Exit(0 if server.started else 1)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOpt = None) -> None:
    """Create or migrate the schema to the newest version."""
    from sqlalchemy.engine import make_url

    from cadenza.bootstrap import upgrade_database

    settings = _settings(database_url)
    asyncio.run(upgrade_database(settings.database_url))
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    typer.echo(f"database at {shown} is up to date")


def _register() -> None:
    """The commands kept in their own modules (each imports what it runs inside its
    commands, so registering them stays cheap)."""
    from cadenza.entrypoints import (
        cli_audit,
        cli_config,
        cli_quotas,
        cli_remote,
        cli_retention,
        cli_secrets,
    )

    for module in (cli_remote, cli_secrets, cli_audit, cli_config, cli_quotas, cli_retention):
        module.register(app)


_register()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
