"""Follow one API process's event stream (``GET /api/v1/events/stream``) across its restarts:
when the connection ends (the process was killed), wait until the process is ready again and
reconnect with ``Last-Event-ID``: the id of the last event received."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field

import aiohttp
from tests.cluster.harness import Cluster

STREAM = "/api/v1/events/stream"


@dataclass
class Seen:
    """Every event the stream delivered, per instance: (seq, type) in arrival order."""

    events: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    last_id: str | None = None
    connections: int = 0
    resumed: int = 0  # reconnections that sent Last-Event-ID

    def problems(self, journals: dict[str, list[tuple[int, str]]]) -> list[str]:
        """Instances whose stream differs from their journal: a missing, repeated or
        reordered event, or another type at a sequence number."""
        found: list[str] = []
        for iid, journal in journals.items():
            got = self.events.get(iid, [])
            if got != journal:
                want_seqs, got_seqs = [s for s, _ in journal], [s for s, _ in got]
                found.append(f"{iid}: stream {got_seqs[:50]} != journal {want_seqs[:50]}")
        return found


class Follower:
    """Reads the stream of ``member`` into ``seen`` until ``stop()``."""

    def __init__(self, cluster: Cluster, member: str) -> None:
        self.cluster = cluster
        self.member = member
        self.seen = Seen()
        self.connected = asyncio.Event()  # the first connection is established
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect; return once the stream is open (it starts from that moment)."""
        self._task = asyncio.create_task(self._run())
        waits = {asyncio.ensure_future(self.connected.wait()), self._task}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            self._task.result()

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def unfinished(self, ids: set[str]) -> set[str]:
        """The instances whose terminal event the stream has not delivered yet."""
        if self._task is not None and self._task.done():
            self._task.result()  # the follower failed: say why
        ends = ("InstanceCompleted", "InstanceFailed", "InstanceCancelled")
        return {i for i in ids if not any(t in ends for _, t in self.seen.events.get(i, []))}

    async def until_seen(self, ids: set[str], timeout_s: float) -> None:
        """Wait until the stream delivered the terminal event of every instance in ``ids``."""
        deadline = time.monotonic() + timeout_s
        while missing := self.unfinished(ids):
            assert time.monotonic() < deadline, f"no terminal event streamed for {sorted(missing)}"
            await asyncio.sleep(0.1)

    async def _run(self) -> None:
        m = self.cluster.members[self.member]
        while not self._stopping.is_set():
            await m.ready.wait()
            # the process went away: reconnect once it is back
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
                await self._read()

    async def _read(self) -> None:
        client = self.cluster.client(self.member)
        headers = {"Authorization": f"Bearer {client.token}", "Accept": "text/event-stream"}
        if self.seen.last_id is not None:
            headers["Last-Event-ID"] = self.seen.last_id
            self.seen.resumed += 1
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with self.cluster.session.get(
            client.base + STREAM, headers=headers, timeout=timeout
        ) as r:
            assert r.status == 200, await r.text()
            self.seen.connections += 1
            self.connected.set()
            event_id: str | None = None
            data: list[str] = []
            async for raw in r.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    self._deliver(event_id, "\n".join(data))
                    event_id, data = None, []

    def _deliver(self, event_id: str | None, data: str) -> None:
        body = json.loads(data)
        if event_id is None or not isinstance(body, dict) or "instance_id" not in body:
            return
        self.seen.events[str(body["instance_id"])].append((int(body["seq"]), str(body["type"])))
        self.seen.last_id = event_id
