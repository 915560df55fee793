"""Live events over SSE (with ``Last-Event-ID`` resume) and WebSocket; one filter for both."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from cadenza.application.feed import EventHub
from cadenza.application.identity import Permission, Principal
from cadenza.application.ports_api import FeedCursor, FeedEntry
from cadenza.domain.json import JSONObject
from cadenza.domain.status import InstanceStatus, TaskStatus

_I, _T = InstanceStatus, TaskStatus
# the status an event leaves its subject in, for the ``status`` filter
EVENT_STATUS: Mapping[str, InstanceStatus | TaskStatus] = {
    "InstanceStarted": _I.RUNNING,
    "InstanceResumed": _I.RUNNING,
    "InstanceCompleted": _I.COMPLETED,
    "InstanceFailed": _I.FAILED,
    "InstanceCancelled": _I.CANCELLED,
    "TaskScheduled": _T.SCHEDULED,
    "TaskRetryScheduled": _T.SCHEDULED,
    "TaskRequeued": _T.SCHEDULED,
    "TaskReset": _T.SCHEDULED,
    "TaskLeased": _T.RUNNING,
    "TaskStepRecorded": _T.RUNNING,
    "TaskWaiting": _T.WAITING,
    "TaskCompleted": _T.COMPLETED,
    "TaskFailed": _T.FAILED,
    "TaskSkipped": _T.SKIPPED,
    "TaskCancelled": _T.CANCELLED,
}
HEARTBEAT_S = 15.0


@dataclass(frozen=True)
class EventFilter:
    workspace_id: str
    instance_id: str | None = None
    process_id: str | None = None
    status: str | None = None
    tasks_only: bool = False

    def __call__(self, entry: FeedEntry) -> bool:
        e = entry.event
        return (
            entry.workspace_id == self.workspace_id
            and (self.instance_id is None or e.instance_id == self.instance_id)
            and (self.process_id is None or entry.process_id == self.process_id)
            and (self.status is None or EVENT_STATUS.get(e.type_name) == self.status)
            and (not self.tasks_only or e.type_name.startswith("Task"))
        )


def event_json(entry: FeedEntry) -> JSONObject:
    e = entry.event
    return {
        "position": entry.position,
        "seq": entry.seq,
        "id": e.event_id,
        "type": e.type_name,
        "instance_id": e.instance_id,
        "process_id": entry.process_id,
        "status": EVENT_STATUS.get(e.type_name),
        "occurred_at": e.occurred_at,
        "data": e.data(),
    }


def parse_cursor(text: str | None) -> FeedCursor | None:
    """Raise ValueError for a malformed ``Last-Event-ID``."""
    if text is None or text == "":
        return None
    return FeedCursor.parse(text.strip())


class WireCache:
    """Each event's SSE bytes, encoded once however many subscribers receive it."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._wire: OrderedDict[str, bytes] = OrderedDict()

    def sse(self, entry: FeedEntry) -> bytes:
        found = self._wire.get(entry.position)
        if found is not None:
            return found
        data = json.dumps(event_json(entry), separators=(",", ":"))
        text = f"id: {entry.position}\nevent: {entry.event.type_name}\ndata: {data}\n\n"
        self._wire[entry.position] = wire = text.encode()
        if len(self._wire) > self._size:
            self._wire.popitem(last=False)
        return wire


async def sse(
    hub: EventHub,
    p: Principal,
    f: EventFilter,
    after: FeedCursor | None,
    cache: WireCache | None = None,
    until_revoked: Callable[[], Awaitable[str]] | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body: a retry hint, then one message per event, comments as heartbeats.
    When ``until_revoked`` returns (the caller lost access), a ``revoked`` message with the
    reason ends the stream; nothing queued after that point is sent."""
    p.require(Permission.READ)
    wire = cache or WireCache(64)
    yield b"retry: 2000\n\n"
    queue: asyncio.Queue[FeedEntry | str | None] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        async for entry in hub.stream(after, f):
            await queue.put(entry)
        await queue.put(None)

    task = asyncio.create_task(pump())

    async def watch(check: Callable[[], Awaitable[str]]) -> None:
        reason = await check()
        task.cancel()
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(reason)

    watcher = asyncio.create_task(watch(until_revoked)) if until_revoked else None
    try:
        while True:
            try:
                entry = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if entry is None:
                return
            if isinstance(entry, str):
                yield _revoked(entry)
                return
            chunk = [wire.sse(entry)]
            while not queue.empty():  # send what is already queued as one write
                more = queue.get_nowait()
                if not isinstance(more, FeedEntry):
                    queue.put_nowait(more)  # the end or a revocation: next round
                    break
                chunk.append(wire.sse(more))
            yield b"".join(chunk)
    finally:
        for t in (task, watcher):
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t


def _revoked(reason: str) -> bytes:
    data = json.dumps({"reason": reason}, separators=(",", ":"))
    return f"event: revoked\ndata: {data}\n\n".encode()
