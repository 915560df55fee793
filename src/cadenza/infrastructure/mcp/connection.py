"""One long-lived MCP session per server, owned by a background task.

The SDK's transports and ``ClientSession`` are anyio context managers whose cancel scopes must be
entered and exited by the same task. Callers come and go on many tasks, so each connection gets
an owner task that enters the transport and the session, parks until told to stop, then exits
them; callers only send requests through the session, which is safe from any task.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TextIO

import httpx2
import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.session import IncomingMessage
from mcp.client.streamable_http import streamable_http_client

from cadenza.infrastructure.mcp.config import ServerConfig, StdioServer, resolve_refs
from cadenza.infrastructure.observability.tracing import trace_hooks

log = logging.getLogger(__name__)

# The SDK's own defaults for MCP over HTTP: a response stream may stay open for a long time,
# and every tool call is bounded by the gateway's own timeout anyway.
_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)

# The owner task's exit runs the stdio shutdown sequence (close stdin, SIGTERM, SIGKILL), which
# the SDK bounds at about 6 s; past this the task is cancelled.
_CLOSE_TIMEOUT_S = 10.0


class ConnectionLost(Exception):
    """The session ended (the server exited or the transport failed) before it was ready."""


class Connection:
    """The session to one server; (re)started lazily, closed by ``close``."""

    def __init__(
        self,
        config: ServerConfig,
        on_list_changed: Callable[[], None],
        errlog: TextIO | None = None,
        on_response: Callable[[httpx2.Response], Awaitable[None]] | None = None,
    ) -> None:
        """``on_response`` sees every HTTP response of an ``HttpServer`` session."""
        self.config = config
        self._on_response = on_response
        self._on_list_changed = on_list_changed
        self._errlog = errlog
        self._task: asyncio.Task[None] | None = None
        self._session: ClientSession | None = None
        self._error: BaseException | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()

    @property
    def alive(self) -> bool:
        """Running with an initialized session (the owner task has not ended)."""
        return self._session is not None and self._task is not None and not self._task.done()

    @property
    def current(self) -> ClientSession | None:
        """The live session, if any (never starts one)."""
        return self._session if self.alive else None

    async def session(self, timeout_s: float) -> ClientSession:
        """The live session, starting one (bounded by ``timeout_s``) if there is none.

        Callers serialize ``session`` and ``close`` per server (the gateway's lock); a failed
        start leaves nothing running.
        """
        if self.alive:
            assert self._session is not None
            return self._session
        await self.close()  # reap an owner task whose session died on its own
        # Resolved here so a missing variable surfaces as ConfigError, not as a lost session.
        config = self.config
        refs = resolve_refs(config.env if isinstance(config, StdioServer) else config.headers)
        self._ready, self._stop, self._error = asyncio.Event(), asyncio.Event(), None
        self._task = asyncio.create_task(self._own(refs), name=f"mcp-session:{config.name}")
        try:
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        except BaseException:
            await self.close()
            raise
        if self._session is None:
            error = self._error
            await self.close()
            raise ConnectionLost(f"could not start MCP server {self.config.name}: {error!r}")
        return self._session

    async def close(self) -> None:
        """End the session and, for stdio, the child process; idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        if self._session is None:
            task.cancel()  # still connecting: nothing to hand over, and it may never answer
        self._stop.set()
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            await asyncio.wait([task])
        except asyncio.CancelledError:
            # Either the connecting task was cancelled above (expected) or our caller was
            # cancelled; in the latter case finish the shutdown and then re-raise.
            await asyncio.wait([task])
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        self._session = None

    async def _open(self, stack: AsyncExitStack, refs: dict[str, str]) -> ClientSession:
        """Enter the transport on ``stack``; return a session over it (not yet entered).

        ``refs`` is the resolved env (stdio) or headers (HTTP).
        """
        config = self.config
        if isinstance(config, StdioServer):
            params = StdioServerParameters(
                command=config.command,
                args=list(config.args),
                env=refs,
                cwd=config.cwd,
            )
            # The SDK execs [command, *args] in a new process group: no shell is involved, and
            # the whole process tree is killed on shutdown.
            transport = stdio_client(params, errlog=self._errlog or sys.stderr)
            read, write = await stack.enter_async_context(transport)
        else:
            # the SDK sends each request in the caller's context: the hook sees its span
            hooks: dict[str, list[Callable[..., Awaitable[None]]]] = dict(trace_hooks())
            if self._on_response is not None:
                hooks["response"] = [self._on_response]
            client = await stack.enter_async_context(
                httpx2.AsyncClient(headers=refs, timeout=_HTTP_TIMEOUT, event_hooks=hooks)
            )
            transport = streamable_http_client(config.url, http_client=client)
            read, write = await stack.enter_async_context(transport)
        return ClientSession(read, write, message_handler=self._on_message)

    async def _own(self, refs: dict[str, str]) -> None:
        """Owner task: enter transport and session, wait for ``close``, exit them here."""
        try:
            async with AsyncExitStack() as stack:
                session = await stack.enter_async_context(await self._open(stack, refs))
                await session.initialize()
                self._session = session
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:  # includes ExceptionGroup from the SDK's task groups
            self._error = exc
            log.warning("MCP session to %s ended: %r", self.config.name, exc)
        finally:
            self._session = None
            self._ready.set()  # wake a connecting caller, who finds no session

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._on_list_changed()
        elif isinstance(message, Exception):
            log.debug("MCP transport error from %s: %r", self.config.name, message)
