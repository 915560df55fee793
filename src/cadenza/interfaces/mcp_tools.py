"""Published processes as MCP tools: list them, and run one as a tool call.

No HTTP here: the caller's ``Principal`` comes in (see ``mcp_server``), and everything goes
through ``Processes``, so the workspace and the permissions are the API's own. A call starts
an instance and waits for it on the live event feed (``EventHub``), which also sees instances
that another process of the deployment finishes; past ``CALL_WAIT_S`` the call answers with
the instance id so the client can follow it over the REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from cadenza.application.definitions import InputsInvalid
from cadenza.application.feed import EventHub
from cadenza.application.identity import Forbidden, Principal
from cadenza.application.ports import InstanceRow, StoredDefinition
from cadenza.application.ports_api import FeedCursor, FeedEntry
from cadenza.application.processes import Processes
from cadenza.application.quotas import QuotaExceeded
from cadenza.domain import events as ev
from cadenza.domain.errors import DomainError
from cadenza.domain.status import InstanceStatus

CALL_WAIT_S = 60.0
"""How long ``tools/call`` waits for the instance to finish before answering 'running'."""
IDEMPOTENCY_META_KEY = "idempotency_key"
"""The request ``_meta`` key carrying an idempotency key (as Cadenza's own MCP gateway sends)."""

_TOOL_NAME = re.compile(r"[^A-Za-z0-9_.-]")  # MCP tool names: 1-128 of [A-Za-z0-9_.-]
_FINISHED = frozenset({InstanceStatus.COMPLETED, InstanceStatus.FAILED, InstanceStatus.CANCELLED})
_FINAL_EVENTS = (ev.InstanceCompleted, ev.InstanceFailed, ev.InstanceCancelled)
_ANNOTATIONS = types.ToolAnnotations(
    read_only_hint=False,  # every call starts an instance
    idempotent_hint=False,  # unless the caller sends an idempotency key in _meta
    open_world_hint=True,  # processes call models, HTTP services and other MCP servers
)


def tool_name(process_id: str) -> str:
    """The MCP tool name of a process (process ids are slugs, so usually the id itself)."""
    return _TOOL_NAME.sub("_", process_id)[:128] or "_"


def input_schema(document: dict[str, Any]) -> dict[str, Any]:
    """The definition's ``inputs`` JSON Schema; MCP needs an object at the root."""
    inputs = document.get("inputs")
    if isinstance(inputs, dict) and inputs.get("type", "object") == "object":
        return {**inputs, "type": "object"}
    return {"type": "object"}


def _tool(d: StoredDefinition) -> types.Tool:
    doc: dict[str, Any] = dict(d.document)
    name = str(doc.get("name") or d.process_id)
    about = str(doc.get("description") or "").strip()
    description = f"{name} (process {d.process_id!r}, version {d.version})"
    if about:
        description += f": {about}"
    return types.Tool(
        name=tool_name(d.process_id),
        title=name,
        description=description,
        input_schema=input_schema(doc),
        annotations=_ANNOTATIONS,
    )


def _result(text: str, structured: dict[str, Any], *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=structured, is_error=error
    )


def _outcome(row: InstanceRow) -> types.CallToolResult:
    if row.status == InstanceStatus.COMPLETED:
        outputs = dict(row.outputs or {})
        return _result(json.dumps(outputs, ensure_ascii=False), outputs)
    about = {"instance_id": row.id, "process_id": row.process_id, "status": row.status}
    if row.status in _FINISHED:
        error = row.error or f"the instance was {row.status}"
        return _result(
            f"instance {row.id} {row.status}: {error}", {**about, "error": error}, error=True
        )
    follow = f"/api/v1/processes/instances/{row.id}"
    text = (
        f"instance {row.id} is still {row.status} after {CALL_WAIT_S:g} s; "
        f"follow it with GET {follow} (or the event stream)"
    )
    return _result(text, {**about, "follow": follow})


def idempotency_key(meta: Any) -> str | None:
    """The key from a request's ``_meta`` (a mapping), if it carries one."""
    if isinstance(meta, dict):
        key = meta.get(IDEMPOTENCY_META_KEY)
        if isinstance(key, str) and key:
            return key
    return None


class PublishedTools:
    """The caller's workspace's published processes, one MCP tool each."""

    def __init__(self, processes: Processes, hub: EventHub) -> None:
        self._processes = processes
        self._hub = hub

    async def published(self, p: Principal) -> dict[str, StoredDefinition]:
        """Tool name -> the newest published version (the one ``Processes.start`` runs)."""
        found: dict[str, StoredDefinition] = {}
        for newest in await self._processes.all(p):
            chosen: StoredDefinition | None = newest
            if newest.status != "published":
                chosen = await self._processes.latest_published(p, newest.process_id)
            if chosen is not None:
                found.setdefault(tool_name(chosen.process_id), chosen)
        return found

    async def list(self, p: Principal) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_tool(d) for d in (await self.published(p)).values()])

    async def call(
        self, p: Principal, name: str, arguments: dict[str, Any], key: str | None
    ) -> types.CallToolResult:
        """Start the process with ``arguments`` as inputs and answer with its outcome."""
        target = (await self.published(p)).get(name)
        if target is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool {name!r}: no published process")
        after = self._hub.head  # before the start: the instance's events all come after it
        try:
            iid = await self._processes.start(p, target.process_id, arguments, None, key)
        except InputsInvalid as exc:
            problems = [{"path": f"inputs{path}", "message": m} for path, m in exc.problems]
            return _result(str(exc), {"error": str(exc), "problems": problems}, error=True)
        except (DomainError, Forbidden, QuotaExceeded) as exc:
            return _result(str(exc), {"error": str(exc)}, error=True)
        row = await self._processes.instance(p, iid)
        if row.status not in _FINISHED:  # an idempotent repeat may have finished long ago
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished(iid, after), CALL_WAIT_S)
            row = await self._processes.instance(p, iid)
        return _outcome(row)

    async def _finished(self, iid: str, after: FeedCursor) -> None:
        def final(entry: FeedEntry) -> bool:
            return entry.event.instance_id == iid and isinstance(entry.event, _FINAL_EVENTS)

        entries = self._hub.stream(after, final)
        try:
            with contextlib.suppress(StopAsyncIteration):  # the feed stopped: shutting down
                await anext(entries)
        finally:
            close = getattr(entries, "aclose", None)  # an async generator: finish it now
            if close is not None:
                await close()
