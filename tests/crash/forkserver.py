"""A fork server for crash tests: import Cadenza once, then fork a fresh engine per run.

``cadenza worker`` spends ~2.7 s importing before it runs anything, so a thousand cold
restarts would take most of an hour. This helper process imports everything once and, for
each request on stdin, forks a child that builds the engine through the composition root
(``bootstrap.build``) and runs it until a crash point SIGKILLs it, a test kills it, or no
instance is left running (then it stops gracefully and exits 0). The kills stay real SIGKILLs of
real processes; a kill and restart costs milliseconds. A SIGTERM stops a child cleanly.

Protocol (one JSON object per line): request ``{"settings": {...}, "log": PATH}``; answers
``{"pid": N}`` once forked, then ``{"pid": N, "exit": CODE}`` (``-9``: SIGKILL) once reaped.
Run as ``python -m tests.crash.forkserver`` from the repository root (see ``ForkServer``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

ROOT = Path(__file__).resolve().parents[2]
IDLE_POLL_S = 0.02  # how often a child looks whether any instance still runs


async def _run(settings: Mapping[str, object]) -> int:
    from cadenza.bootstrap import build
    from cadenza.settings import Settings

    rt = await build(Settings(**settings), migrate=False)  # type: ignore[arg-type]
    stopping = asyncio.Event()  # SIGTERM: a clean stop, as a supervisor's (leases released)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await rt.start()
    try:
        while not stopping.is_set() and (await rt.store.count_instances()).get("running"):
            await asyncio.sleep(IDLE_POLL_S)
    finally:
        await rt.close()
    return 0


def _child(request: Mapping[str, object]) -> None:
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)  # the protocol's pipes belong to the server
        os.dup2(null, 1)
        log = request.get("log")
        if isinstance(log, str):
            os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), 2)
        settings = request.get("settings")
        assert isinstance(settings, dict)
        code = asyncio.run(_run(settings))
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


async def _prewarm(directory: str) -> None:
    """Build and close one engine: what ``build`` imports and initialises lazily (1.5 s of
    the first build; 15 ms of each later one) is then done once for every child."""
    from cadenza.bootstrap import build
    from cadenza.infrastructure.sql.database import create_engine, normalize_url
    from cadenza.settings import Settings

    mcp = [{"name": "warm", "url": "http://127.0.0.1:1/mcp"}]  # imports the MCP client
    warm = Settings(database_url=f"sqlite:///{directory}/warm.db", mcp_servers=mcp)  # type: ignore[arg-type]
    await (await build(warm)).close()
    await create_engine(normalize_url("postgresql://u@127.0.0.1:1/warm")).dispose()


def serve() -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(_prewarm(directory))
    gc.collect()
    gc.freeze()  # children share these pages instead of copying them on the first collection
    out = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        out.write(json.dumps({"pid": pid, "exit": os.waitstatus_to_exitcode(status)}) + "\n")
        out.flush()


# ---- the test side -----------------------------------------------------------------------------
@dataclass
class Child:
    pid: int
    server: ForkServer

    async def exit_code(self) -> int:
        """Wait until the child is reaped; ``-9`` means it was SIGKILLed."""
        answer = await self.server.read()
        assert answer.get("pid") == self.pid, answer
        code = answer["exit"]
        assert isinstance(code, int)
        return code


class ForkServer:
    """The test's handle on a running fork server (one child at a time)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls) -> ForkServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.crash.forkserver",
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def spawn(self, settings: Mapping[str, object], log: Path) -> Child:
        assert self.proc.stdin is not None
        request = {"settings": dict(settings), "log": str(log)}
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        await self.proc.stdin.drain()
        answer = await self.read()
        pid = answer["pid"]
        assert isinstance(pid, int)
        return Child(pid, self)

    async def read(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        assert line, f"the fork server exited ({self.proc.returncode})"
        answer = json.loads(line)
        assert isinstance(answer, dict)
        return answer

    async def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


if __name__ == "__main__":
    serve()
