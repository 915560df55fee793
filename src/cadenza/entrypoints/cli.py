"""The ``cadenza`` command line: run, validate, serve, worker, agents, db upgrade.

Start-up time is recovery time (a crashed worker, a restarted pod): this module imports only
typer and rich at the top; each command imports what it needs inside its function, so
``cadenza --help`` builds nothing and ``cadenza worker`` never imports the API stack (FastAPI,
uvicorn, strawberry), the MCP SDK or a model SDK it is not configured to use. Guarded by
tests/unit/test_startup_imports.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from cadenza.bootstrap import Runtime
    from cadenza.domain.commands import StartInstance
    from cadenza.domain.json import JSONObject
    from cadenza.interfaces.progress import Progress
    from cadenza.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Cadenza: durable AI workflows.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")
err = Console(stderr=True)

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="CADENZA_DATABASE_URL",
        help="sqlite:///path, postgresql://... or mysql://... (MySQL 8 / MariaDB)",
    ),
]


def _settings(database_url: str | None) -> Settings:
    from cadenza.settings import Settings

    settings = Settings()
    if database_url:
        settings.database_url = database_url
    return settings


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def _load(path: Path) -> JSONObject:
    from cadenza.bootstrap.standalone import DocumentError, read_document

    try:
        return read_document(path)
    except DocumentError as exc:
        raise _fail(str(exc)) from exc


@app.command()
def validate(file: Path) -> None:
    """Validate a definition file and list every problem."""
    from cadenza.bootstrap import build
    from cadenza.domain.errors import DefinitionInvalid
    from cadenza.settings import Settings

    document = _load(file)

    async def _run() -> None:
        runtime = await build(Settings(database_url="sqlite://"), migrate=False, run_worker=False)
        try:
            definition = await runtime.definitions.validate(document)
        finally:
            await runtime.store.close()
            await runtime.egress.aclose()
        nodes = len(definition.graph.nodes)
        typer.echo(f"{file}: valid ({definition.id}, {nodes} nodes, {definition.content_hash})")

    try:
        asyncio.run(_run())
    except DefinitionInvalid as exc:
        raise _fail(f"{file}: {exc}") from exc


@app.command()
def run(
    file: Path,
    input: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="key=value (JSON values allowed)")
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input-file", help="JSON/YAML file of inputs")
    ] = None,
    include: Annotated[
        list[Path] | None,
        typer.Option("--include", help="also publish these definitions (subprocesses)"),
    ] = None,
    database_url: DatabaseOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live progress")] = False,
) -> None:
    """Publish FILE, start an instance, show live progress, print the outputs as JSON."""
    from cadenza.bootstrap.standalone import DocumentError, parse_input_pairs

    document = _load(file)
    included = [_load(p) for p in include or []]
    try:
        inputs = _load(input_file) if input_file else {}
        inputs.update(parse_input_pairs(input or []))
    except DocumentError as exc:
        raise _fail(str(exc)) from exc
    settings = _settings(database_url)
    code = asyncio.run(_run_instance(settings, document, included, inputs, quiet))
    raise typer.Exit(code)


async def _run_instance(
    settings: Settings,
    document: JSONObject,
    included: list[JSONObject],
    inputs: JSONObject,
    quiet: bool,
) -> int:
    from cadenza.application.definitions import InputsInvalid
    from cadenza.application.usage import usage_totals
    from cadenza.bootstrap import build, tune_gc
    from cadenza.domain.commands import StartInstance
    from cadenza.domain.errors import DefinitionInvalid, DomainError
    from cadenza.domain.status import InstanceStatus
    from cadenza.interfaces.progress import Progress

    runtime = await build(settings)
    tune_gc()
    try:
        for doc in included:
            await runtime.definitions.publish(doc)
        stored = await runtime.definitions.publish(document)
        _, plan = await runtime.definitions.plan(stored.process_id, stored.version)
        runtime.definitions.check_inputs(plan.definition, inputs)
        progress = Progress(list(plan.root.order))
        runtime.engine.subscribe(progress.feed)
        await runtime.start()
        start = StartInstance(stored.process_id, inputs, version=stored.version)
        inst = await _follow(runtime, start, progress, quiet)
    except (DefinitionInvalid, InputsInvalid, DomainError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    finally:
        await runtime.close()
    totals = usage_totals(inst)
    if totals["tokens"] and not quiet:
        err.print(
            f"usage: {totals['tokens']:.0f} tokens (prompt {totals['prompt_tokens']:.0f}, "
            f"completion {totals['completion_tokens']:.0f}), cost {totals['cost']:.6f}",
            highlight=False,
        )
    if inst.status is InstanceStatus.COMPLETED:
        typer.echo(json.dumps(inst.outputs, indent=2, ensure_ascii=False))
        return 0
    err.print(f"[red]instance {inst.id} {inst.status}:[/red] {inst.error}", highlight=False)
    return 1


async def _follow(runtime: Runtime, start: StartInstance, progress: Progress, quiet: bool):  # type: ignore[no-untyped-def]
    instance_id = await runtime.engine.submit(start)
    if isinstance(instance_id, BaseException):
        raise instance_id
    assert isinstance(instance_id, str)
    progress.follow(instance_id)
    if quiet or not sys.stderr.isatty():
        inst = await runtime.engine.wait_finished(instance_id)
        if not quiet:
            err.print(progress.render())
        return inst
    from rich.live import Live

    with Live(progress.render(), console=err, refresh_per_second=8) as live:
        waiter = asyncio.ensure_future(runtime.engine.wait_finished(instance_id))
        while not waiter.done():
            live.update(progress.render())
            await asyncio.wait([waiter], timeout=0.125)
        live.update(progress.render())
        return waiter.result()


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


def _register_remote() -> None:
    from cadenza.entrypoints import cli_remote

    cli_remote.register(app)


_register_remote()


def _register_secrets() -> None:
    from cadenza.entrypoints import cli_secrets

    cli_secrets.register(app)


_register_secrets()


def _register_audit() -> None:
    from cadenza.entrypoints import cli_audit

    cli_audit.register(app)


_register_audit()


def _register_config() -> None:
    from cadenza.entrypoints import cli_config

    cli_config.register(app)


_register_config()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
