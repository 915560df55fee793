"""``cadenza login|apply|start|ps|logs``: the CLI as a client of a running server."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from cadenza.domain.status import InstanceStatus

if TYPE_CHECKING:  # the commands import what they use: registering them must stay cheap
    from cadenza.domain.json import JSONObject
    from cadenza.entrypoints.cli_client import ApiClient

T = TypeVar("T")
err = Console(stderr=True, soft_wrap=True)  # a path or an error is never cut mid-word
ServerOpt = Annotated[
    str | None, typer.Option("--server", help="default $CADENZA_SERVER or http://127.0.0.1:8080")
]
WorkspaceOpt = Annotated[
    str | None, typer.Option("--workspace", "-w", help="default $CADENZA_WORKSPACE or yours")
]


def _run(server: str | None, workspace: str | None, job: Callable[[ApiClient], Awaitable[T]]) -> T:
    import aiohttp

    from cadenza.entrypoints.cli_client import ApiClient, ClientError

    async def main() -> T:
        async with aiohttp.ClientSession() as session:
            return await job(ApiClient.configured(session, server, workspace))

    try:
        return asyncio.run(main())
    except ClientError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    except aiohttp.ClientError as exc:
        err.print(f"[red]error:[/red] cannot reach the server: {exc}", highlight=False)
        raise typer.Exit(2) from exc


async def workspace_id(c: ApiClient) -> str:
    """The workspace a workspace-scoped command acts on: ``--workspace`` (or
    ``$CADENZA_WORKSPACE``, which the client sends as ``X-Workspace``), else the caller's
    current one."""
    if c.workspace:
        return c.workspace
    me = await c.call("GET", "/api/v1/me")
    return str(me["workspace_id"])


def login(
    username: Annotated[str, typer.Option(help="user name")] = "admin",
    password_stdin: Annotated[bool, typer.Option(help="read the password from stdin")] = False,
    server: ServerOpt = None,
) -> None:
    """Sign in and keep the tokens for later commands (file mode 0600)."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass()
    path = _run(server, None, lambda c: c.login(username, password))
    typer.echo(f"signed in as {username}; tokens saved in {path}")


def apply(
    file: Path,
    draft: Annotated[bool, typer.Option(help="save as a draft without publishing")] = False,
    server: ServerOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Save a definition file on the server and publish it (unless --draft)."""
    from cadenza.bootstrap.standalone import DocumentError, read_document

    try:
        document = read_document(file)
    except DocumentError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    body = {"document": document, "publish": not draft}
    saved = _run(server, workspace, lambda c: c.call("POST", "/api/v1/processes/definitions", body))
    typer.echo(f"{saved['process_id']} version {saved['version']} {saved['status']}")


def start(
    process: str,
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="key=value")] = None,
    input_file: Annotated[Path | None, typer.Option(help="JSON/YAML file of inputs")] = None,
    version: Annotated[int | None, typer.Option(help="default: latest published")] = None,
    wait: Annotated[bool, typer.Option(help="follow until it finishes; print outputs")] = False,
    server: ServerOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Start an instance of PROCESS; prints its id (or its outputs with --wait)."""
    from cadenza.bootstrap.standalone import DocumentError, parse_input_pairs, read_document

    try:
        inputs: JSONObject = read_document(input_file) if input_file else {}
        inputs.update(parse_input_pairs(input or []))
    except DocumentError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    body: JSONObject = {"process_id": process, "inputs": inputs}
    if version is not None:
        body["version"] = version

    async def job(c: ApiClient) -> int:
        inst = await c.call("POST", "/api/v1/processes/instances", body)
        if not wait:
            typer.echo(inst["id"])
            return 0
        return await _follow(c, inst["id"], quiet=True)

    raise typer.Exit(_run(server, workspace, job))


def ps(
    status: Annotated[InstanceStatus | None, typer.Option(help="only this status")] = None,
    process: Annotated[str | None, typer.Option(help="only this process id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    server: ServerOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """List instances, newest first."""
    from rich.table import Column, Table

    params = {"limit": str(limit)}
    if status:
        params["status"] = status.value
    if process:
        params["process_id"] = process
    page = _run(server, workspace, lambda c: c.call("GET", "/api/v1/processes/instances", **params))
    # ids are copied from here into other commands: never wrapped or cut, whatever the width
    widest = max((len(i["id"]) for i in page["items"]), default=2)
    table = Table(Column("ID", no_wrap=True, min_width=widest), "PROCESS", "VERSION", "STATUS")
    table.add_column("ERROR")
    for i in page["items"]:
        table.add_row(i["id"], i["process_id"], str(i["version"]), i["status"], i["error"] or "")
    Console().print(table)


def logs(
    instance: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="stream until it ends")] = False,
    server: ServerOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Print an instance's events; with --follow, keep printing until it finishes."""
    from cadenza.entrypoints.cli_client import format_event

    async def job(c: ApiClient) -> int:
        if follow:
            return await _follow(c, instance, quiet=False)
        for e in await c.call("GET", f"/api/v1/processes/instances/{instance}/events"):
            typer.echo(format_event(e))
        return 0

    raise typer.Exit(_run(server, workspace, job))


async def _follow(c: ApiClient, instance_id: str, *, quiet: bool) -> int:
    """The instance's events from its first (``after=start``) until it ends, where the
    stream stops by itself; the seq check keeps an event from being printed twice."""
    from cadenza.entrypoints.cli_client import format_event

    printed = 0
    async for e in c.events(instance_id, "start"):
        seq = int(str(e.get("seq") or 0))
        if seq <= printed:
            continue
        printed = seq
        if not quiet:
            typer.echo(format_event(e))
    inst = await c.call("GET", f"/api/v1/processes/instances/{instance_id}")
    if inst["status"] == "completed":
        if quiet:
            typer.echo(json.dumps(inst["outputs"], indent=2, ensure_ascii=False))
        return 0
    err.print(f"[red]instance {instance_id} {inst['status']}:[/red] {inst['error']}")
    return 1


def register(app: typer.Typer) -> None:
    for command in (login, apply, start, ps, logs):
        app.command()(command)
