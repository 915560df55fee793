"""Shared by the outbox and bus-consumer tests: a small definition, runtimes over one
database sharing one "remote" in-process bus (as processes share Redis or Kafka), and a
subscriber that collects what the bus delivers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from cadenza.application.ports import Store
from cadenza.application.ports_bus import BusMessage
from cadenza.bootstrap import Runtime, build
from cadenza.domain import commands as cmd
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.bus.memory import MemoryBus
from cadenza.settings import Settings

DEADLINE_S = 30.0
DOC: JSONObject = {
    "schema": "cadenza/v1",
    "id": "relayed",
    "name": "Relayed",
    "inputs": {"type": "object", "properties": {"i": {"type": "integer"}}},
    "nodes": [
        {"id": "a", "type": "transform", "config": {"output": "{{ inputs.i + 1 }}"}},
        {"id": "b", "type": "transform", "config": {"output": "{{ nodes.a.output * 2 }}"}},
    ],
    "edges": [{"from": "a", "to": "b"}],
    "outputs": {"n": "{{ nodes.b.output }}"},
}


async def runtime(url: str, bus: MemoryBus, *, run_worker: bool = True, **extra: object) -> Runtime:
    settings = Settings(database_url=url, **extra)  # type: ignore[arg-type]
    return await build(settings, run_worker=run_worker, bus=bus)


async def start(rt: Runtime, i: int = 1) -> str:
    await rt.definitions.publish(DOC)
    iid = await rt.engine.submit(cmd.StartInstance("relayed", {"i": i}))
    assert isinstance(iid, str)
    return iid


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (a state, never a duration); fail with ``what`` at the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def until_backlog_empty(store: Store) -> None:
    """Wait for the relay to delete what it published: a consumer can see a message before
    the pass that published it commits the deletion of its row."""
    deadline = time.monotonic() + DEADLINE_S
    while (left := await store.outbox_backlog()) != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for an empty outbox ({left} rows left)")
        await asyncio.sleep(0.005)


class Collector:
    """Every message of one group, from when ``open`` returned."""

    def __init__(self, bus: MemoryBus, group: str) -> None:
        self.bus = bus
        self.group = group
        self.messages: list[BusMessage] = []
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> Collector:
        self._task = asyncio.create_task(self._run())
        await until(lambda: self.group in self.bus.groups, f"subscription {self.group}")
        return self

    async def _run(self) -> None:
        async for m in self.bus.subscribe(self.group):
            self.messages.append(m)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def keys(self, instance_id: str) -> list[tuple[str, int]]:
        return [(m.type, m.seq) for m in self.messages if m.instance_id == instance_id]
