"""``cadenza serve``: the API, the web console and the engine in one process. What it builds
is ``cadenza.bootstrap.serve``; this module parses, asks and reports."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Coroutine
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from cadenza.application.accounts import IdentityInvalid
from cadenza.application.identity import Identity
from cadenza.bootstrap import Runtime, build_app, build_identity
from cadenza.bootstrap.serve import http_server, open_runtime, publish_file
from cadenza.bootstrap.standalone import DocumentError
from cadenza.domain.errors import DefinitionInvalid
from cadenza.settings import Settings

err = Console(stderr=True, soft_wrap=True)  # a path or an error is never cut mid-word


async def _first_admin(identity: Identity, settings: Settings) -> None:
    if await identity.store.count_users():
        return
    password = settings.admin_password
    if not password and sys.stdin.isatty():
        err.print("No users yet: choose the password of the first admin (user 'admin').")
        while True:
            password = getpass.getpass("admin password: ")
            if password == getpass.getpass("again: "):
                break
            err.print("[red]the two passwords differ[/red]")
    if await identity.ensure_first_admin(password or None) is None:
        err.print("user 'admin' was created by another process starting at the same time")
        return
    err.print("created user 'admin' (system admin) and workspace 'default'")


async def _publish(runtime: Runtime, files: list[Path]) -> None:
    """Publish definition files into the default workspace (same content: same version)."""
    for file in files:
        stored = await publish_file(runtime, file)
        err.print(f"published {stored.process_id} version {stored.version} from {file}")


async def serve(settings: Settings, *, role: str = "all", publish: list[Path] | None = None) -> int:
    runtime = await open_runtime(settings, role=role)
    try:
        identity = await build_identity(runtime)
        await _first_admin(identity, settings)
        await _publish(runtime, publish or [])
        app = await build_app(runtime, identity)
    except (IdentityInvalid, DocumentError, DefinitionInvalid, ValueError) as exc:
        # ValueError: a setting the API cannot use (a rate limit, the token secret), named
        await runtime.close()
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    server = http_server(settings, app)
    # the URL without its password: this line goes to the logs (and a log shipper)
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    err.print(
        f"Cadenza on http://{settings.host}:{settings.port} (API docs at /docs) with {shown}",
        highlight=False,
    )
    await server.serve()
    return 0 if server.started else 1


def command(
    settings: Settings, host: str | None, port: int | None, role: str, publish: list[Path]
) -> None:
    if host:
        settings.host = host
    if port is not None:
        settings.port = port
    if role not in ("all", "api"):
        raise typer.BadParameter("role must be 'all' (API + engine) or 'api' (API only)")
    raise typer.Exit(_run(serve(settings, role=role, publish=publish)))


def _run(main: Coroutine[None, None, int]) -> int:
    """On uvloop when it is installed (it comes with uvicorn[standard]): the server's loop
    spends most of its time in socket and callback scheduling, where uvloop is faster."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
