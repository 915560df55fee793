"""``cadenza audit``: read the audit log of a running server (admins), as a table or JSON
lines, through ``GET /api/v1/audit`` and its cursor."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cadenza.entrypoints.cli_remote import ServerOpt, WorkspaceOpt, _run, err

if TYPE_CHECKING:
    from cadenza.entrypoints.cli_client import ApiClient

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def since_iso(text: str, now: float) -> str:
    """``30m``, ``12h``, ``7d`` before ``now``, or an ISO 8601 time, as ISO 8601."""
    found = _RELATIVE.match(text)
    if found:
        delta = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
        return (datetime.fromtimestamp(now, UTC) - delta).isoformat()
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise typer.BadParameter(
            "use 30m, 12h, 7d or an ISO 8601 time", param_hint="--since"
        ) from exc


def _line(row: dict[str, Any]) -> str:
    at = datetime.fromtimestamp(row["at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
    who = row["actor_name"] or f"{row['actor_type']}:{row['actor_id'] or '-'}"
    target = f"{row['target_type']}:{row['target_id']}"
    where = row["workspace_id"] or "-"
    return f"{at}  {row['outcome']:<6} {row['action']:<24} {target:<40} {who}  ws={where}"


def audit(
    action: Annotated[
        str | None, typer.Option(help="an action prefix: definition., auth.login")
    ] = None,
    since: Annotated[str | None, typer.Option(help="30m, 12h, 7d or an ISO 8601 time")] = None,
    actor: Annotated[str | None, typer.Option(help="a user id or API key id")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many rows")] = 100,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="one JSON object a line")] = False,
    server: ServerOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Who changed what, newest first (system admins: everything; workspace admins: theirs)."""
    params = {"action": action, "actor": actor}
    if since:
        params["since"] = since_iso(since, time.time())
    query = {k: v for k, v in params.items() if v}

    async def job(c: ApiClient) -> int:
        shown, cursor = 0, None
        while shown < limit:
            page_params = {**query, "limit": str(min(500, limit - shown))}
            if cursor:
                page_params["cursor"] = cursor
            page = await c.call("GET", "/api/v1/audit", **page_params)
            for row in page["items"]:
                typer.echo(json.dumps(row, ensure_ascii=False) if jsonl else _line(row))
            shown += len(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        if not shown and not jsonl:
            err.print("no audit rows match")
        return shown

    _run(server, workspace, job)


def register(app: typer.Typer) -> None:
    app.command()(audit)
