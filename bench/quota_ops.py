"""Cost of the workspace quota store's operations (``infrastructure/sql/quotas.py``) on a
SQLite file, one process, sequential: what a start and a model turn add (docs: quotas).

    PYTHONPATH=src python -m bench.quota_ops      # prints JSON (milliseconds per operation)
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from cadenza.application.ports_quotas import BudgetLimits, Reservation
from cadenza.infrastructure.sql.database import create_engine, upgrade
from cadenza.infrastructure.sql.quotas import SqlQuotaStore

REPEAT = 1000


async def measure() -> dict[str, float]:
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'quotas.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    store = SqlQuotaStore(engine)
    turn = Reservation("ws", "2026-12-02", "2026-12", 10, 0.001)
    budget = BudgetLimits(10**12, None, None, None)

    async def admit(hold: str) -> None:
        await store.admit_running("ws", 10, hold, 200.0, 100.0)
        await store.release_running("ws", hold)

    ops: dict[str, Callable[[int], Awaitable[object]]] = {
        "limits_read": lambda i: store.limits("ws"),
        "running_count": lambda i: store.running("ws"),
        "take_start": lambda i: store.take_start("ws", i // 100, None),
        "admit_and_release_running": lambda i: admit(f"h{i}"),
        "reserve": lambda i: store.reserve(turn, budget),
        "add_usage": lambda i: store.add(turn),
    }
    out: dict[str, float] = {}
    try:
        for name, op in ops.items():
            await op(-1)  # rows made, connections open
            started = time.perf_counter()
            for i in range(REPEAT):
                await op(i)
            out[f"{name}_ms"] = round((time.perf_counter() - started) / REPEAT * 1000, 3)
    finally:
        await engine.dispose()
    return out


def main() -> None:
    print(json.dumps(asyncio.run(measure())))


if __name__ == "__main__":
    main()
