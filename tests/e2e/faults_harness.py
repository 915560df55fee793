"""What the store-fault tests share: a gated HTTP peer, restartable servers, a small tmpfs, a
watch on the engine's store state, and the checks that nothing was lost or recorded twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from tests.pg import PostgresServer

from cadenza.application.availability import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    StoreAvailability,
    StoreStatus,
)
from cadenza.application.engine import Engine
from cadenza.application.ports import Store
from cadenza.domain import events as ev
from cadenza.domain.json import JSONObject
from cadenza.domain.status import InstanceStatus

PROCESS_ID = "store-faults"


def definition(peer_url: str) -> JSONObject:
    """An ``http`` call the peer holds at its gate, then a transform of its answer."""
    return {
        "schema": "cadenza/v1",
        "id": PROCESS_ID,
        "name": "Store faults",
        "inputs": {"type": "object", "properties": {"i": {"type": "integer"}}, "required": ["i"]},
        "nodes": [
            {
                "id": "call",
                "type": "http",
                "config": {"url": peer_url, "json": {"i": "{{ inputs.i }}"}},
            },
            {
                "id": "tenfold",
                "type": "transform",
                "config": {"output": "{{ nodes.call.output.body.i * 10 }}"},
            },
        ],
        "edges": [{"from": "call", "to": "tenfold"}],
        "outputs": {"i": "{{ nodes.call.output.body.i }}", "x": "{{ nodes.tenfold.output }}"},
    }


@dataclass
class GatedPeer:
    """Answers ``{"i": ...}`` once the gate of ``i`` opens (``early`` for even ``i``, ``late``
    for odd); ``arrived`` is set at the ``expected``th call."""

    expected: int
    url: str = ""
    early: asyncio.Event = field(default_factory=asyncio.Event)
    late: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    keys: list[str] = field(default_factory=list)  # Idempotency-Key of every call

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.keys.append(request.headers.get("Idempotency-Key", ""))
        if len(self.keys) >= self.expected:
            self.arrived.set()
        await (self.early if body["i"] % 2 == 0 else self.late).wait()
        return web.json_response({"i": body["i"]})


@contextlib.asynccontextmanager
async def gated_peer(expected: int) -> AsyncIterator[GatedPeer]:
    peer = GatedPeer(expected)
    app = web.Application()
    app.router.add_post("/work", peer.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    peer.url = f"http://127.0.0.1:{runner.addresses[0][1]}/work"
    try:
        yield peer
    finally:
        peer.early.set()
        peer.late.set()
        await runner.cleanup()


class StoreWatch:
    """Follows the engine's store state: outages, failures counted, and their timing."""

    def __init__(self, availability: StoreAvailability) -> None:
        self.errors = 0
        self.down = asyncio.Event()
        self.up = asyncio.Event()
        self._changed = asyncio.Event()
        self.down_at = 0.0
        self.up_at = 0.0
        availability.subscribe(self._on_status)

    def _on_status(self, status: StoreStatus) -> None:
        now = asyncio.get_running_loop().time()
        if status.available:
            self.up_at = now
            self.up.set()
        else:
            if not self.down.is_set():
                self.down_at = now
            self.errors += 1
            self.down.set()
            self.up.clear()
        self._changed.set()

    async def until_errors(self, n: int) -> None:
        """Wait until the engine has failed ``n`` times against the store (it keeps retrying)."""
        while self.errors < n:
            self._changed.clear()
            await self._changed.wait()

    def max_failures(self) -> int:
        """The most failures a backoff allows over the outage: the commit loop's retries
        (from BACKOFF_INITIAL_S, doubling to BACKOFF_MAX_S), one failed sweep and one failed
        lease renewal (both then wait for the store). A loop retrying without backoff, or a
        part logging on its own each tick, exceeds it at once."""
        outage = self.up_at - self.down_at
        retries, waited, delay = 1, 0.0, BACKOFF_INITIAL_S
        while waited + delay <= outage:
            waited += delay
            delay = min(delay * 2, BACKOFF_MAX_S)
            retries += 1
        return retries + 2


def outage_outlasting(lease_s: float) -> int:
    """Failures to wait for so that the store stays away longer than ``lease_s``: the commit
    loop sleeps its backoff between two of its failures, and at most two failures come from
    elsewhere (a sweep, a lease renewal), so the backoffs alone outlast the lease."""
    failures, slept, delay = 1, 0.0, BACKOFF_INITIAL_S
    while slept <= lease_s:
        slept += delay
        delay = min(delay * 2, BACKOFF_MAX_S)
        failures += 1
    return failures + 2


class Completions:
    """Instances the engine committed as completed, told by its listener (no store read)."""

    def __init__(self, engine: Engine, expected: int) -> None:
        self.ids: set[str] = set()
        self.expected = expected
        self.all_done = asyncio.Event()
        engine.subscribe(self._on_events)

    def _on_events(self, events: list[tuple[int, ev.Event]]) -> None:
        for _, e in events:
            if isinstance(e, ev.InstanceCompleted):
                self.ids.add(e.instance_id)
        if len(self.ids) >= self.expected:
            self.all_done.set()


async def assert_recorded_once(store: Store, instance_ids: dict[str, int]) -> None:
    """Every instance completed with its exact outputs; its journal has gap-free sequence
    numbers, one TaskCompleted per task and no requeue (no lease lapsed for the outage)."""
    for iid, i in instance_ids.items():
        row = await store.get_instance(iid)
        assert row is not None
        assert row.status == InstanceStatus.COMPLETED.value
        assert row.outputs == {"i": i, "x": 10 * i}
        journal = await store.journal(iid)
        assert [seq for seq, _ in journal] == list(range(1, len(journal) + 1))
        nodes = {
            e.task_id: e.node_id
            for _, e in journal
            if isinstance(e, ev.TaskScheduled | ev.TaskWaiting)
        }
        completed = Counter(nodes[e.task_id] for _, e in journal if isinstance(e, ev.TaskCompleted))
        assert completed["call"] == completed["tenfold"] == 1
        assert set(completed.values()) == {1}  # and every other task (start, end) once too
        assert not [e for _, e in journal if isinstance(e, ev.TaskRequeued)]


class RestartablePostgres(PostgresServer):
    """A PostgreSQL server of one test, stopped and started again while clients use it."""

    def halt(self) -> None:
        """A clean, fast shutdown: sessions are disconnected, the data is kept."""
        pg_ctl = str(self.bin_dir / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        self._pg_ctl_start()


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``directory`` (needs root), unmounted afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True
    )
    try:
        yield directory
    finally:
        done = subprocess.run(["umount", str(directory)], check=False, capture_output=True)
        if done.returncode != 0:  # a file still open: detach now, freed when it is closed
            subprocess.run(["umount", "-l", str(directory)], check=True)


def fill(path: Path) -> int:
    """Write ``path`` until the file system is full; the bytes written."""
    chunk, written = b"\0" * 4096, 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                written += os.write(fd, chunk)
            except OSError:  # ENOSPC: full
                return written
    finally:
        os.close(fd)
