"""Who hears of what the engine committed: event listeners, and callers waiting for an
instance to finish. Told after commit only, never before."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from cadenza.domain.events import Event
from cadenza.domain.instance import Instance

log = logging.getLogger(__name__)
Listener = Callable[[list[tuple[int, Event]]], None]
# told before the events: the node type of each task they finish or retry (task id -> type)
TypesListener = Callable[[dict[str, str]], None]


class Listeners:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._types: list[TypesListener] = []
        self._finished: dict[str, list[asyncio.Future[Instance]]] = {}

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def subscribe_task_types(self, listener: TypesListener) -> None:
        self._types.append(listener)

    @property
    def wants_task_types(self) -> bool:
        return bool(self._types)

    def publish(
        self, events: list[tuple[int, Event]], task_types: dict[str, str] | None = None
    ) -> None:
        """Hand events (with their journal seq; 0 for live-only ones) to every listener,
        after ``task_types`` (the node types of the tasks they end) to its listeners."""
        for types_listener in self._types if task_types else ():
            try:
                types_listener(task_types or {})
            except Exception:  # a listener's bug must not stop the engine
                log.exception("task types listener failed")
        for listener in self._listeners:
            try:
                listener(events)
            except Exception:  # a listener's bug must not stop the engine
                log.exception("event listener failed")

    def waiter(self, instance_id: str) -> asyncio.Future[Instance]:
        """A future set to the instance once a commit finishes it."""
        fut: asyncio.Future[Instance] = asyncio.get_running_loop().create_future()
        self._finished.setdefault(instance_id, []).append(fut)
        return fut

    def finished(self, instances: Iterable[Instance]) -> None:
        for inst in instances:
            for waiter in self._finished.pop(inst.id, []):
                if not waiter.done():
                    waiter.set_result(inst)
