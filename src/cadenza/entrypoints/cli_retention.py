"""``cadenza retention get|set|reset`` and ``cadenza legal-holds list|set|clear``: a
workspace's retention policy and its legal holds on a running server, through
``/api/v1/workspaces/{id}/retention``, ``.../legal-holds`` and
``/api/v1/processes/instances/{id}/legal-hold`` (docs/retention.md).

Ages are typed as people think of them (``30d``, ``12h``, ``90m``, seconds) and sent in
seconds; whether an age is allowed (at least a minute, failed at least finished) is the API's
rule, and its 422 text is what the command prints.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cadenza.entrypoints.cli_remote import ServerOpt, WorkspaceOpt, _run, err, workspace_id

if TYPE_CHECKING:
    from cadenza.entrypoints.cli_client import ApiClient

retention_app = typer.Typer(no_args_is_help=True, help="A workspace's retention policy.")
holds_app = typer.Typer(no_args_is_help=True, help="Legal holds: instances retention keeps.")
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3_600, "d": 86_400}
_KEEP_WORDS = {"keep", "none", "null", "never", "forever"}
AgeOpt = Annotated[
    str | None, typer.Option(help="30d, 12h, 90m, seconds, or 'keep' (never delete)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def parse_age(text: str, hint: str) -> float | None:
    """``30d`` / ``12h`` / ``90m`` / ``600s`` / ``600`` in seconds; ``keep``: None."""
    cleaned = text.strip().lower()
    if cleaned in _KEEP_WORDS:
        return None
    found = _AGE.match(cleaned)
    if not found:
        raise typer.BadParameter("use 30d, 12h, 90m, a number of seconds, or keep", param_hint=hint)
    seconds = float(found.group(1)) * _SECONDS[found.group(2)]
    return int(seconds) if seconds.is_integer() else seconds


def show_age(seconds: float | None) -> str:
    """Seconds in the largest unit they are a whole number of; ``keep`` for None."""
    if seconds is None:
        return "keep (never deleted)"
    plain = f"{int(seconds)} s" if float(seconds).is_integer() else f"{seconds} s"
    for unit in ("d", "h", "m"):
        size = _SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit} ({plain})"
    return plain


def _when(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def policy_lines(view: dict[str, Any]) -> list[str]:
    source = "its own policy" if view["source"] == "workspace" else "the server's default"
    lines = [f"workspace {view['workspace_id']}: {source}"]
    if view.get("updated_by"):
        lines[0] += f" (set by {view['updated_by']} at {_when(view.get('updated_at'))} UTC)"
    lines.append(f"finished  {show_age(view['finished_s'])}")
    lines.append(f"failed    {show_age(view['failed_s'])}")
    return lines


def _print(found: Any, as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(found, ensure_ascii=False, indent=2))
    else:
        for line in lines:
            typer.echo(line)


def _path(ws: str) -> str:
    return f"/api/v1/workspaces/{ws}/retention"


@retention_app.command("get")
def retention_get(
    as_json: JsonOpt = False, server: ServerOpt = None, workspace: WorkspaceOpt = None
) -> None:
    """The retention policy that applies to the workspace, and where it comes from."""

    async def job(c: ApiClient) -> Any:
        return await c.call("GET", _path(await workspace_id(c)))

    view = _run(server, workspace, job)
    _print(view, as_json, policy_lines(view))


@retention_app.command("set")
def retention_set(
    finished: AgeOpt = None,
    failed: AgeOpt = None,
    as_json: JsonOpt = False,
    server: ServerOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Set the workspace's own policy (its admins): completed and cancelled instances are
    deleted --finished after they ended, failed ones --failed after. An age not given keeps
    the value that applies now. E.g. cadenza retention set --finished 30d --failed 90d."""
    if finished is None and failed is None:
        err.print("nothing to change: give --finished and/or --failed")
        raise typer.Exit(2)
    ages = {
        "finished_s": None if finished is None else parse_age(finished, "--finished"),
        "failed_s": None if failed is None else parse_age(failed, "--failed"),
    }
    given = {"finished_s": finished is not None, "failed_s": failed is not None}

    async def job(c: ApiClient) -> Any:
        path = _path(await workspace_id(c))
        current = await c.call("GET", path)
        body = {k: ages[k] if given[k] else current[k] for k in ages}
        return await c.call("PUT", path, body)

    view = _run(server, workspace, job)
    _print(view, as_json, policy_lines(view))


@retention_app.command("reset")
def retention_reset(server: ServerOpt = None, workspace: WorkspaceOpt = None) -> None:
    """Drop the workspace's own policy: the server's default applies again."""

    async def job(c: ApiClient) -> str:
        ws = await workspace_id(c)
        await c.call("DELETE", _path(ws))
        return ws

    err.print(f"workspace {_run(server, workspace, job)}: the server's default policy applies")


def hold_line(h: dict[str, Any]) -> str:
    by = h.get("set_by") or "-"
    return f"{h['instance_id']:<28} {_when(h.get('set_at')):<20} {by:<24} {h.get('reason') or ''}"


@holds_app.command("list")
def holds_list(
    as_json: JsonOpt = False, server: ServerOpt = None, workspace: WorkspaceOpt = None
) -> None:
    """The workspace's legal holds, newest first (at most 1,000)."""

    async def job(c: ApiClient) -> Any:
        return await c.call("GET", f"/api/v1/workspaces/{await workspace_id(c)}/legal-holds")

    holds = _run(server, workspace, job)
    if not holds and not as_json:
        err.print("no instance is under a legal hold")
    _print(holds, as_json, [hold_line(h) for h in holds])


@holds_app.command("set")
def holds_set(
    instance: str,
    reason: Annotated[
        str | None, typer.Option(help="why it is kept (at most 500 characters)")
    ] = None,
    server: ServerOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Keep INSTANCE and all its rows whatever the retention policy says (workspace admins);
    replaces an existing hold's reason."""
    path = f"/api/v1/processes/instances/{instance}/legal-hold"
    hold = _run(server, workspace, lambda c: c.call("PUT", path, {"reason": reason}))
    typer.echo(hold_line(hold))


@holds_app.command("clear")
def holds_clear(instance: str, server: ServerOpt = None, workspace: WorkspaceOpt = None) -> None:
    """Release INSTANCE's legal hold: the retention policy applies to it again."""
    path = f"/api/v1/processes/instances/{instance}/legal-hold"
    _run(server, workspace, lambda c: c.call("DELETE", path))
    err.print(f"legal hold on {instance} released")


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")
    app.add_typer(holds_app, name="legal-holds")
