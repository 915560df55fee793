"""Exit status of the HTTP servers (``cadenza serve``, ``cadenza mcp-proxy``) on SIGTERM.

uvicorn stops gracefully on SIGTERM (open requests finish, the lifespan shutdown runs: running
tasks get ``shutdown_grace_s``), then raises the signal again so that the process dies of it:
exit status 143 in a container, which reads as a crash next to the worker's 0. A stop that was
asked for and done is a success, so the re-raised SIGTERM exits 0 here. A SIGTERM that arrives
before uvicorn has installed its own handlers (during start-up) exits 0 at once, as it would
have killed the process before.
"""

from __future__ import annotations

import signal
from types import FrameType


def _exit_zero(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def exit_zero_on_sigterm() -> None:
    """Make SIGTERM end the process with status 0 (call before starting the server)."""
    signal.signal(signal.SIGTERM, _exit_zero)
