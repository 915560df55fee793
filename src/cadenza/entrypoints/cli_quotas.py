"""``cadenza quotas get|set``: a workspace's limits and usage on a running server, through
``/api/v1/workspaces/{id}/quotas`` and ``.../usage`` (docs/quotas.md).

``set`` changes only the limits it names: the API replaces the whole set, so the command
reads the workspace's own limits first and sends them back with the changes. Values are
passed to the API as typed, so a bad one is refused with the API's own 422 text (the same
the console shows), not with a second set of rules kept here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cadenza.application.ports_quotas import LIMIT_NAMES
from cadenza.entrypoints.cli_remote import ServerOpt, WorkspaceOpt, _run, err, workspace_id

if TYPE_CHECKING:
    from cadenza.entrypoints.cli_client import ApiClient

quotas_app = typer.Typer(no_args_is_help=True, help="A workspace's quotas and usage.")
LIMITS = LIMIT_NAMES
# what each limit is measured against in GET .../usage
_USED = {
    "max_running": ("running",),
    "starts_per_minute": ("starts_this_minute",),
    "tokens_per_day": ("today", "tokens"),
    "tokens_per_month": ("this_month", "tokens"),
    "cost_per_day": ("today", "cost"),
    "cost_per_month": ("this_month", "cost"),
}
_UNSET_WORDS = {"none", "null", "default", "-"}
LimitOpt = Annotated[
    str | None, typer.Option(help="a number; 'none' drops the workspace's own limit")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def parse_limit(text: str) -> Any:
    """``none`` (the default applies) or a number; anything else goes to the API as typed,
    whose 422 names what is wrong with it."""
    if text.strip().lower() in _UNSET_WORDS:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def merged(own: dict[str, Any], changes: dict[str, str | None], reset: bool) -> dict[str, Any]:
    """The full set to PUT: the current own limits (none with ``reset``), then the changes."""
    body = {name: None if reset else own.get(name) for name in LIMITS}
    for name, text in changes.items():
        if text is not None:
            body[name] = parse_limit(text)
    return body


def _shown(value: Any) -> str:
    return "-" if value is None else str(value)


def table(quotas: dict[str, Any], usage: dict[str, Any]) -> list[str]:
    """One line per limit: the workspace's own value, the one in force, and the usage."""
    lines = [
        f"workspace {quotas['workspace_id']}",
        f"{'LIMIT':<20}{'OWN':>14}{'IN FORCE':>14}{'USED':>14}",
    ]
    for name in LIMITS:
        used: Any = usage
        for key in _USED[name]:
            used = used[key]
        own, effective = quotas["own"][name], quotas["effective"][name]
        lines.append(f"{name:<20}{_shown(own):>14}{_shown(effective):>14}{_shown(used):>14}")
    lines.append("(-: no limit of its own / unlimited)")
    return lines


async def _both(c: ApiClient, ws: str) -> dict[str, Any]:
    base = f"/api/v1/workspaces/{ws}"
    return {
        "quotas": await c.call("GET", f"{base}/quotas"),
        "usage": await c.call("GET", f"{base}/usage"),
    }


def _print(found: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    for line in table(found["quotas"], found["usage"]):
        typer.echo(line)


@quotas_app.command("get")
def quotas_get(
    as_json: JsonOpt = False, server: ServerOpt = None, workspace: WorkspaceOpt = None
) -> None:
    """The workspace's own limits, the limits in force and its usage against them."""

    async def job(c: ApiClient) -> dict[str, Any]:
        return await _both(c, await workspace_id(c))

    _print(_run(server, workspace, job), as_json)


@quotas_app.command("set")
def quotas_set(
    max_running: LimitOpt = None,
    starts_per_minute: LimitOpt = None,
    tokens_per_day: LimitOpt = None,
    tokens_per_month: LimitOpt = None,
    cost_per_day: LimitOpt = None,
    cost_per_month: LimitOpt = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="drop every own limit first (defaults apply)")
    ] = False,
    as_json: JsonOpt = False,
    server: ServerOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Change the workspace's own limits (system admins); limits not named are kept.
    E.g. cadenza quotas set --max-running 20 --cost-per-month 500 --tokens-per-day none."""
    changes = {
        "max_running": max_running,
        "starts_per_minute": starts_per_minute,
        "tokens_per_day": tokens_per_day,
        "tokens_per_month": tokens_per_month,
        "cost_per_day": cost_per_day,
        "cost_per_month": cost_per_month,
    }
    if not reset and all(v is None for v in changes.values()):
        err.print("nothing to change: name a limit (e.g. --max-running 20) or --reset")
        raise typer.Exit(2)

    async def job(c: ApiClient) -> dict[str, Any]:
        ws = await workspace_id(c)
        path = f"/api/v1/workspaces/{ws}/quotas"
        current = await c.call("GET", path)
        await c.call("PUT", path, merged(current["own"], changes, reset))
        return await _both(c, ws)

    _print(_run(server, workspace, job), as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(quotas_app, name="quotas")
