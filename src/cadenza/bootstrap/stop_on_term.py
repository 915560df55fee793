"""The uvicorn server of `cadenza serve` and `cadenza mcp-proxy`: SIGTERM ends it with status 0."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import uvicorn


class StopOnTerm(uvicorn.Server):
    """A uvicorn server for which SIGTERM is a stop request, not a kill: after its graceful
    shutdown the process exits 0. uvicorn re-raises a caught signal once it has stopped, so
    a clean ``docker stop`` or pod termination used to end with status 143 (-15), which
    orchestrators report as killed. Ctrl-C (SIGINT) keeps uvicorn's behaviour."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                captured: list[int] = getattr(self, "_captured_signals", [])
                captured[:] = [s for s in captured if s != signal.SIGTERM]
