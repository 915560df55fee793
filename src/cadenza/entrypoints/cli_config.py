"""``cadenza config providers|mcp-servers|settings list|set|delete``: the runtime
configuration of a running server, through ``/api/v1/config/...`` (docs/configuration.md).

Credentials never go on the command line (where ``ps`` and shell history would keep them): a
provider's API key is read from stdin (``--api-key-stdin``) or from a variable of this shell
(``--api-key-env VAR``); an MCP server's env and header values likewise
(``--env NAME=VAR``, ``--header NAME=VAR``: the value of this shell's ``VAR``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cadenza.entrypoints.cli_remote import ServerOpt, WorkspaceOpt, _run, err

if TYPE_CHECKING:
    from cadenza.entrypoints.cli_client import ApiClient

config_app = typer.Typer(no_args_is_help=True, help="Runtime configuration of a server.")
providers_app = typer.Typer(no_args_is_help=True, help="Model providers.")
servers_app = typer.Typer(no_args_is_help=True, help="MCP servers.")
settings_app = typer.Typer(no_args_is_help=True, help="Settings that can change live.")
BASE = "/api/v1/config"
SharedOpt = Annotated[
    bool, typer.Option("--shared", help="every workspace's (system admins); default: yours")
]
NoValidateOpt = Annotated[
    bool, typer.Option("--no-validate", help="skip the test call (system admins)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _query(shared: bool, no_validate: bool = False) -> dict[str, str]:
    q = {"scope": "shared" if shared else "workspace"}
    if no_validate:
        q["validate"] = "false"
    return q


def _from_env(pairs: list[str] | None, what: str) -> dict[str, str] | None:
    """``NAME=VAR`` pairs: NAME takes the value of this shell's variable VAR."""
    if pairs is None:
        return None
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, var = pair.partition("=")
        if not sep or not name or not var:
            raise typer.BadParameter(f"use NAME=VAR, got {pair!r}", param_hint=what)
        if var not in os.environ:
            raise typer.BadParameter(f"variable {var} is not set", param_hint=what)
        out[name] = os.environ[var]
    return out


def _show(rows: Any, as_json: bool, line: Any) -> None:
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows if isinstance(rows, list) else [rows]:
        typer.echo(line(row))


def _where(row: dict[str, Any]) -> str:
    return str(row.get("scope") or row.get("source"))


def _provider_line(r: dict[str, Any]) -> str:
    key = "key" if r.get("has_api_key") else "no key"
    return (
        f"{r['name']:<24} {_where(r):<12} {r['kind']:<10} {r.get('base_url') or '-':<40} "
        f"{r.get('default_model') or '-':<20} {key}"
    )


def _server_line(r: dict[str, Any]) -> str:
    target = r.get("url") or " ".join([r.get("command") or "", *r.get("args", [])])
    names = ",".join([*r.get("env_names", []), *r.get("header_names", [])]) or "-"
    return f"{r['name']:<24} {_where(r):<12} {r['transport']:<6} {target:<50} {names}"


def _setting_line(r: dict[str, Any]) -> str:
    return f"{r['name']:<24} {json.dumps(r['value']):<20} {r['source']}"


# ---- providers ---------------------------------------------------------------------------


@providers_app.command("list")
def providers_list(
    as_json: JsonOpt = False, server: ServerOpt = None, workspace: WorkspaceOpt = None
) -> None:
    """The providers your workspace sees: environment, shared, its own."""
    rows = _run(server, workspace, lambda c: c.call("GET", f"{BASE}/providers"))
    _show(rows, as_json, _provider_line)


@providers_app.command("set")
def providers_set(
    name: str,
    kind: Annotated[str, typer.Option(help="openai, anthropic or offline")] = "openai",
    base_url: Annotated[str | None, typer.Option(help="the API's base URL")] = None,
    default_model: Annotated[str, typer.Option(help="model when a node names none")] = "",
    pool_size: Annotated[int | None, typer.Option(min=1, help="connections per process")] = None,
    price: Annotated[
        list[str] | None, typer.Option(help="MODEL=PROMPT:COMPLETION per 1,000 tokens")
    ] = None,
    api_key_stdin: Annotated[bool, typer.Option(help="read the API key from stdin")] = False,
    api_key_env: Annotated[
        str | None, typer.Option(help="take the API key from this shell variable")
    ] = None,
    shared: SharedOpt = False,
    no_validate: NoValidateOpt = False,
    server: ServerOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Create or replace a provider (tested first); without a key option the stored key
    is kept."""
    body: dict[str, Any] = {"kind": kind, "base_url": base_url, "default_model": default_model}
    if pool_size is not None:
        body["pool_size"] = pool_size
    if price:
        body["prices"] = dict(_price(p) for p in price)
    if api_key_stdin:
        body["api_key"] = sys.stdin.readline().rstrip("\r\n")
    elif api_key_env:
        if api_key_env not in os.environ:
            raise typer.BadParameter(
                f"variable {api_key_env} is not set", param_hint="--api-key-env"
            )
        body["api_key"] = os.environ[api_key_env]

    async def job(c: ApiClient) -> Any:
        path = f"{BASE}/providers/{name}"
        return await c.call("PUT", path, body, **_query(shared, no_validate))

    _show(_run(server, workspace, job), False, _provider_line)


def _price(text: str) -> tuple[str, dict[str, float]]:
    model, _, numbers = text.partition("=")
    prompt, _, completion = numbers.partition(":")
    try:
        return model, {"prompt": float(prompt), "completion": float(completion or 0)}
    except ValueError as exc:
        raise typer.BadParameter("use MODEL=PROMPT:COMPLETION", param_hint="--price") from exc


@providers_app.command("delete")
def providers_delete(
    name: str, shared: SharedOpt = False, server: ServerOpt = None, workspace: WorkspaceOpt = None
) -> None:
    """Remove a stored provider."""
    _run(
        server, workspace, lambda c: c.call("DELETE", f"{BASE}/providers/{name}", **_query(shared))
    )
    err.print(f"provider {name!r} deleted")


# ---- MCP servers -------------------------------------------------------------------------


@servers_app.command("list")
def servers_list(
    as_json: JsonOpt = False, server: ServerOpt = None, workspace: WorkspaceOpt = None
) -> None:
    """The MCP servers your workspace sees: environment, shared, its own."""
    rows = _run(server, workspace, lambda c: c.call("GET", f"{BASE}/mcp-servers"))
    _show(rows, as_json, _server_line)


@servers_app.command("set")
def servers_set(
    name: str,
    command: Annotated[str | None, typer.Option(help="a stdio server (system admins)")] = None,
    arg: Annotated[list[str] | None, typer.Option(help="an argument of the command")] = None,
    url: Annotated[str | None, typer.Option(help="a streamable-HTTP server")] = None,
    env: Annotated[list[str] | None, typer.Option(help="NAME=VAR: env value from $VAR")] = None,
    header: Annotated[
        list[str] | None, typer.Option(help="NAME=VAR: header value from $VAR")
    ] = None,
    shared: SharedOpt = False,
    no_validate: NoValidateOpt = False,
    server: ServerOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Create or replace an MCP server (handshake and tool list first); without --env or
    --header the stored values are kept."""
    body: dict[str, Any] = {"command": command, "args": arg or [], "url": url}
    values, headers = _from_env(env, "--env"), _from_env(header, "--header")
    if values is not None:
        body["env"] = values
    if headers is not None:
        body["headers"] = headers

    async def job(c: ApiClient) -> Any:
        path = f"{BASE}/mcp-servers/{name}"
        return await c.call("PUT", path, body, **_query(shared, no_validate))

    _show(_run(server, workspace, job), False, _server_line)


@servers_app.command("delete")
def servers_delete(
    name: str, shared: SharedOpt = False, server: ServerOpt = None, workspace: WorkspaceOpt = None
) -> None:
    """Remove a stored MCP server."""
    path = f"{BASE}/mcp-servers/{name}"
    _run(server, workspace, lambda c: c.call("DELETE", path, **_query(shared)))
    err.print(f"MCP server {name!r} deleted")


# ---- live settings -----------------------------------------------------------------------


@settings_app.command("list")
def settings_list(as_json: JsonOpt = False, server: ServerOpt = None) -> None:
    """The live settings, their values and where each comes from (system admins)."""
    rows = _run(server, None, lambda c: c.call("GET", f"{BASE}/settings"))
    _show(rows, as_json, _setting_line)


@settings_app.command("set")
def settings_set(name: str, value: str, server: ServerOpt = None) -> None:
    """Change a live setting for every process; VALUE is JSON (a bare word is a string)."""
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    row = _run(server, None, lambda c: c.call("PUT", f"{BASE}/settings/{name}", {"value": parsed}))
    _show(row, False, _setting_line)


@settings_app.command("delete")
def settings_delete(name: str, server: ServerOpt = None) -> None:
    """Return a live setting to its environment value or default."""
    _run(server, None, lambda c: c.call("DELETE", f"{BASE}/settings/{name}"))
    err.print(f"setting {name!r} reset")


def register(app: typer.Typer) -> None:
    config_app.add_typer(providers_app, name="providers")
    config_app.add_typer(servers_app, name="mcp-servers")
    config_app.add_typer(settings_app, name="settings")
    app.add_typer(config_app, name="config")
