"""A workspace-deletion job SIGKILLed between two batches (crash point
``mid-workspace-deletion``) loses nothing: the next job goes on where the committed batches
stopped, and the totals in the ``workspace.deleted`` audit row are exact."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.test_workspace_deletion import (
    deleted_rows,
    job,
    owned,
    plant,
    planted,
    request,
    store,  # noqa: F401 (the fixture)
)

from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.workspace_deletion import SqlWorkspaceDeletion

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import asyncio, sys
from cadenza.application import failpoints
from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.store import SqlStore
from tests.integration.test_workspace_deletion import job

async def main() -> None:
    failpoints.arm("mid-workspace-deletion:2")
    store = SqlStore(create_engine(sys.argv[1]))
    await job(store, batch=1).run_once()  # the second batch's crash point kills it first

asyncio.run(main())
"""


async def test_a_job_killed_between_batches_is_resumed_by_the_next(store: SqlStore) -> None:  # noqa: F811
    await plant(store, "a", n=4)
    await plant(store, "b", n=1)
    await request(store, "a")
    url = store.engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CHILD, url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "failpoint mid-workspace-deletion triggered (pass 2)" in child.stderr
    progress = await SqlWorkspaceDeletion(store).progress("a")
    assert progress is not None
    assert progress.deleted["instances"] == 2
    assert progress.remaining["instances"] == 2
    assert not await job(store, batch=1).run_once()
    assert set((await owned(store, "a")).values()) == {0}
    assert await deleted_rows(store, "a") == planted(4)
    assert (await owned(store, "b"))["instances"] == 1
