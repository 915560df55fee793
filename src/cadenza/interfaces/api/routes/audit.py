"""The audit log for admins: a filtered, cursor-paged list and a JSON-lines export.

System admins see every row; a workspace admin (``manage``) only the rows of the workspace
they act in: the scope is set by ``Auditor.query`` and applied in the store's query.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, BeforeValidator

from cadenza.application.audit import Auditor
from cadenza.application.audit_ports import MAX_PAGE, AuditEntry, AuditQuery
from cadenza.application.identity import Principal
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.problems import documented
from cadenza.interfaces.api.schemas import JsonObject
from cadenza.interfaces.api.services import ApiServices

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
# opaque to clients: every string of this shape is a cursor, so none is refused after validation
_CURSOR = r"^c[0-9a-f]{1,15}$"
_Text = Annotated[str | None, Query(max_length=200)]


class AuditOut(BaseModel):
    id: int
    at: float
    actor_type: str
    actor_id: str | None
    actor_name: str | None
    workspace_id: str | None
    action: str
    target_type: str
    target_id: str
    request_id: str | None
    client_ip: str | None
    outcome: str
    before: JsonObject | None
    after: JsonObject | None

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        assert e.id is not None
        return cls(**{**e.__dict__, "id": e.id})


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None  # pass as ``cursor`` for the next (older) page; None: the last


def encode_cursor(row_id: int) -> str:
    return f"c{row_id:x}"


def decode_cursor(cursor: str) -> int:
    """The id of the last row of the previous page (the route's pattern admits only these)."""
    return int(cursor[1:], 16)


def _no_number(value: object) -> object:
    """Times are ISO 8601 only: a bare number (which pydantic reads as a Unix time) is refused,
    as the schema (``format: date-time``) says."""
    if isinstance(value, str) and value.replace(".", "", 1).isdigit():
        raise ValueError("an ISO 8601 time, e.g. 2026-12-01T00:00:00Z")
    return value


_Time = Annotated[datetime | None, BeforeValidator(_no_number)]


def _auditor(svc: ApiServices) -> Auditor:
    if svc.audit is None:
        raise HTTPException(503, "the audit log is not configured on this server")
    return svc.audit


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def filters(
    actor: _Text = None,
    action: Annotated[str | None, Query(max_length=64, description="a prefix")] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: _Text = None,
    workspace_id: Annotated[str | None, Query(max_length=40)] = None,
    since: Annotated[_Time, Query(description="ISO 8601; rows at or after")] = None,
    until: Annotated[_Time, Query(description="ISO 8601; rows before")] = None,
) -> AuditQuery:
    return AuditQuery(
        scope=None,  # set from the caller by Auditor.query
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        workspace_id=workspace_id,
        since=_ts(since),
        until=_ts(until),
    )


Filters = Annotated[AuditQuery, Depends(filters)]


@router.get("", responses=documented(503))
async def list_audit(
    p: Caller,
    svc: Svc,
    q: Filters,
    cursor: Annotated[str | None, Query(max_length=16, pattern=_CURSOR)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> AuditPage:
    """Audit rows, newest first (admins: a workspace admin sees their workspace's rows)."""
    auditor = _auditor(svc)
    before = None if cursor is None else decode_cursor(cursor)
    query = AuditQuery(**{**q.__dict__, "before_id": before, "limit": limit + 1})
    rows = await auditor.query(p, query)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1].id if more and rows else None
    return AuditPage(
        items=[AuditOut.of(e) for e in rows],
        next_cursor=None if last is None else encode_cursor(last),
    )


@router.get("/export", responses=documented(503), response_class=StreamingResponse)
async def export_audit(p: Caller, svc: Svc, q: Filters) -> StreamingResponse:
    """Every matching row as JSON lines, oldest first, streamed page by page."""
    auditor = _auditor(svc)
    first = await auditor.query(p, AuditQuery(**{**q.__dict__, "after_id": 0, "limit": 1}))
    return StreamingResponse(_lines(auditor, p, q, first), media_type="application/x-ndjson")


async def _lines(
    auditor: Auditor, p: Principal, q: AuditQuery, page: list[AuditEntry]
) -> AsyncIterator[bytes]:
    """Pages of ``MAX_PAGE`` rows, each read after the last id sent (a stable order)."""
    while page:
        for e in page:
            yield (json.dumps(AuditOut.of(e).model_dump(), separators=(",", ":")) + "\n").encode()
        after = page[-1].id
        page = await auditor.query(
            p, AuditQuery(**{**q.__dict__, "after_id": after, "limit": MAX_PAGE})
        )
