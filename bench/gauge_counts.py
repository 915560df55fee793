"""Cost of the system-wide gauge counts (``infrastructure/sql/counts.py``) on a SQLite file,
with and without a long history of finished instances: the count reads the running rows
through ``ix_instances_status``, so its cost follows what is active, not the history.

    PYTHONPATH=src python -m bench.gauge_counts      # prints JSON
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from cadenza.infrastructure.sql.counts import sql_counts
from cadenza.infrastructure.sql.database import create_engine, upgrade

REPEAT = 200


async def measure(finished: int, running: int) -> dict[str, float]:
    path = Path(tempfile.mkdtemp()) / "gauges.db"
    url = f"sqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    with sqlite3.connect(path) as con:
        con.executemany(
            "INSERT INTO instances (id, workspace_id, process_id, version, status, inputs,"
            " created_at, updated_at, seq) VALUES (?, 'default', 'p', 1, ?, '{}', 1, 1, 1)",
            (
                (f"i{i}", "running" if i < running else "completed")
                for i in range(finished + running)
            ),
        )
    engine = create_engine(url)
    counts = sql_counts(engine)
    await counts()
    started = time.perf_counter()
    for _ in range(REPEAT):
        await counts()
    ms = (time.perf_counter() - started) / REPEAT * 1000
    await engine.dispose()
    return {"finished": finished, "running": running, "ms_per_count": round(ms, 3)}


async def main() -> None:
    results = [await measure(0, 1000), await measure(200_000, 1000)]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
