"""A real engine on a real database, plus a scriptable local HTTP peer for side effects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import cast

from aiohttp import web
from tests.net import any_route_server

from cadenza.bootstrap import Runtime, build
from cadenza.domain.commands import StartInstance
from cadenza.domain.instance import Instance
from cadenza.domain.json import JSONObject
from cadenza.settings import Settings


@asynccontextmanager
async def engine_on(database_url: str, **overrides: object) -> AsyncIterator[Runtime]:
    settings = Settings(
        database_url=database_url,
        egress_allowed_hosts=["127.0.0.1"],
        sweep_interval_s=0.05,
        **overrides,  # type: ignore[arg-type]
    )
    rt = await build(settings)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.close()


async def run(
    rt: Runtime, doc: JSONObject, inputs: JSONObject | None = None, timeout: float = 20
) -> Instance:
    stored = await rt.definitions.publish(doc)
    iid = await rt.engine.submit(StartInstance(stored.process_id, inputs or {}))
    assert isinstance(iid, str)
    return await asyncio.wait_for(rt.engine.wait_finished(iid), timeout)


async def start(
    rt: Runtime, doc: JSONObject, inputs: JSONObject | None = None, key: str | None = None
) -> str:
    stored = await rt.definitions.publish(doc)
    iid = await rt.engine.submit(
        StartInstance(stored.process_id, inputs or {}, idempotency_key=key)
    )
    assert isinstance(iid, str)
    return iid


def doc(
    nodes: Sequence[Mapping[str, object]],
    edges: Sequence[Mapping[str, object]] | None = None,
    **extra: object,
) -> JSONObject:
    out: dict[str, object] = {"schema": "cadenza/v1", "id": str(extra.pop("id", "p")), "name": "t"}
    out["nodes"] = [dict(n) for n in nodes]
    out["edges"] = [dict(e) for e in edges or []]
    out.update(extra)
    return cast("JSONObject", out)


@dataclass
class Peer:
    """A local HTTP server whose answers the test scripts: status codes in order, delays."""

    url: str = ""
    statuses: dict[str, list[int]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (path, idempotency key)
    on_call: Callable[[str], None] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path.strip("/")
        self.calls.append((path, request.headers.get("Idempotency-Key", "")))
        await asyncio.sleep(self.delays.get(path, 0))
        queue = self.statuses.get(path, [])
        status = queue.pop(0) if queue else 200
        return web.json_response({"path": path, "n": len(self.calls)}, status=status)


@asynccontextmanager
async def peer() -> AsyncIterator[Peer]:
    p = Peer()
    async with any_route_server(p.handle) as p.url:
        yield p
