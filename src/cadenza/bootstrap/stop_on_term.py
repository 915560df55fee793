"""The uvicorn server of `cadenza serve` and `cadenza mcp-proxy`: one configuration for both,
and SIGTERM ends it with status 0."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

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


def uvicorn_server(
    app: Any,
    host: str,
    port: int,
    shutdown_grace_s: float,
    *,
    proxy_headers: bool = False,
    forwarded_allow_ips: list[str] | None = None,
) -> StopOnTerm:
    """``app`` served on ``host:port``; open requests get ``shutdown_grace_s`` + 5 s to end
    at a stop (the engine's grace for running tasks, then the responses they finish)."""
    return StopOnTerm(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            log_config=None,  # configure_logging routes uvicorn's loggers too
            lifespan="on",
            proxy_headers=proxy_headers,
            forwarded_allow_ips=forwarded_allow_ips,
            timeout_graceful_shutdown=int(shutdown_grace_s) + 5,
        )
    )
