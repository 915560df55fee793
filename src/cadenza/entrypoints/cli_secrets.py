"""``cadenza secrets new-key|rotate|set``: the keys that seal workspace secrets, on this host.

These work on the database directly (like ``cadenza db upgrade``); the API
(``PUT /api/v1/secrets/{name}``) is the way for workspace admins.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:  # the commands import what they use: registering them must stay cheap
    from cadenza.application.secrets import WorkspaceSecrets
    from cadenza.bootstrap import Runtime

T = TypeVar("T")
secrets_app = typer.Typer(no_args_is_help=True, help="Workspace secrets and their keys.")
DatabaseOpt = Annotated[
    str | None,
    typer.Option("--database-url", envvar="CADENZA_DATABASE_URL", help="default: settings"),
]


def _with_secrets(
    database_url: str | None,
    job: Callable[[WorkspaceSecrets], Awaitable[T]],
    audit: tuple[str, str, str] | None = None,
) -> T:
    """Run ``job`` on this host's secrets; ``audit`` = (action, workspace, name) appends an
    audit row for it (actor ``cli``, the operating-system user)."""
    return _with_runtime(database_url, lambda runtime: job(runtime.secrets), audit)


def _with_runtime(
    database_url: str | None,
    job: Callable[[Runtime], Awaitable[T]],
    audit: tuple[str, str, str] | None = None,
) -> T:
    """Run ``job`` on a runtime of this host (no tasks), as ``_with_secrets``."""
    from cadenza.application.secrets import SecretInvalid, SecretsUnavailable
    from cadenza.bootstrap import build
    from cadenza.bootstrap.audit import record_host_change
    from cadenza.settings import Settings

    settings = Settings()
    if database_url:
        settings.database_url = database_url

    async def main() -> T:
        runtime = await build(settings, run_worker=False)
        try:
            result = await job(runtime)
            if audit is not None:
                await record_host_change(runtime, *audit)
            return result
        finally:
            await runtime.close()

    try:
        return asyncio.run(main())
    except (SecretsUnavailable, SecretInvalid, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@secrets_app.command("new-key")
def new_key_command() -> None:
    """Print a new random key (32 bytes, URL-safe base64) for CADENZA_SECRETS_KEY."""
    from cadenza.bootstrap.standalone import new_key

    typer.echo(new_key())


@secrets_app.command("rotate")
def rotate(database_url: DatabaseOpt = None) -> None:
    """Re-seal with the first key of the ring every workspace secret, the credentials of the
    stored runtime configuration and the sealed PII originals of stored payloads (rows and
    blobs). Put the new key first (keeping the old ones after it), run this, then drop the
    old keys. Safe to stop and run again: what is under the first key is skipped."""
    lines = _with_runtime(database_url, _rotate_all, ("secret.rotate", "", ""))
    for line in lines:
        typer.echo(line)


async def _rotate_all(runtime: Runtime) -> list[str]:
    """Workspace secrets, the stored providers' and MCP servers' credentials, then the PII
    markers of payloads (docs/secrets.md#rotation); one line per kind."""
    from cadenza.bootstrap.store import payload_rotation

    count = await runtime.secrets.rotate()
    stored = 0 if runtime.config is None else await runtime.config.rotate()
    lines = [
        f"re-sealed {count} secret(s) with the current key",
        f"re-sealed {stored} runtime configuration item(s) with the current key",
    ]
    payloads = payload_rotation(runtime.store, runtime.secrets.cipher)
    if payloads is None:
        return lines
    done = await payloads.run()
    lines.append(
        f"re-sealed {done.markers} PII marker(s) with the current key: {done.rows} payload "
        f"row(s), {done.blobs} blob(s) rewritten, {done.blobs_deleted} old blob(s) deleted"
    )
    if done.unopened:
        lines.append(
            f"warning: {done.unopened} PII marker(s) were sealed with a key that is not in "
            "the ring: left as they are"
        )
    if done.changed_meanwhile:
        lines.append(
            f"{done.changed_meanwhile} row(s) changed while being re-sealed: run rotate again"
        )
    return lines


@secrets_app.command("set")
def set_secret(
    name: str,
    workspace: Annotated[str, typer.Option("--workspace", "-w")] = "default",
    database_url: DatabaseOpt = None,
) -> None:
    """Set a secret of a workspace; the value is read from stdin (or prompted, unechoed)."""
    value = getpass.getpass(f"{name}: ") if sys.stdin.isatty() else sys.stdin.read()
    value = value.rstrip("\r\n")
    _with_secrets(
        database_url,
        lambda vault: vault.put(workspace, name, value, "cli"),
        ("secret.put", workspace, name),
    )
    typer.echo(f"secret {name!r} set in workspace {workspace!r}")


def register(app: typer.Typer) -> None:
    app.add_typer(secrets_app, name="secrets")
