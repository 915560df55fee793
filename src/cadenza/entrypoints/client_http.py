"""``HttpWorkerTransport``: run a ``WorkerClient`` in any process, against a Cadenza server.

    async with HttpWorkerTransport("http://127.0.0.1:8080", api_key) as transport:
        client = WorkerClient(transport, agent_id="...")
        await client.run(handle)

It speaks the API's worker routes (``/api/v1/workers/...``, ``/api/v1/agents/{id}/heartbeat``)
with an API key of a role that may run tasks (operator or above).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import aiohttp

from cadenza.application.external import Assignment, AssignmentNotFound
from cadenza.domain.json import JSON

__all__ = ["HttpWorkerTransport", "WorkerApiError"]

MAX_POLL_S = 30.0  # the server's limit for one long poll
_SLACK_S = 15.0  # beyond the poll's own wait, for the network and a busy server


class WorkerApiError(Exception):
    """The server refused a request; ``status`` and ``detail`` come from its problem body."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class HttpWorkerTransport:
    """The ``WorkerTransport`` of ``cadenza.entrypoints.client`` over HTTP (one pooled aiohttp
    session)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        session: aiohttp.ClientSession | None = None,
        request_timeout_s: float = 30.0,
    ) -> None:
        self._base = base_url.rstrip("/") + "/api/v1"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._session = session
        self._owns_session = session is None
        self._timeout_s = request_timeout_s

    async def __aenter__(self) -> HttpWorkerTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def poll(
        self, worker_agent_id: str, capabilities: Iterable[str] | None, timeout_s: float
    ) -> Assignment | None:
        wait = max(0.0, min(timeout_s, MAX_POLL_S))
        body: dict[str, Any] = {"agent_id": worker_agent_id, "timeout_s": wait}
        if capabilities is not None:
            body["capabilities"] = list(capabilities)
        status, found = await self._post("/workers/poll", body, wait + _SLACK_S)
        if status == 204 or not isinstance(found, dict):
            return None
        return Assignment(
            id=found["id"],
            agent_id=found["agent_id"],
            instance_id=found["instance_id"],
            task_id=found["task_id"],
            node_id=found["node_id"],
            requires=tuple(found["requires"]),
            input=found["input"],
            instructions=found["instructions"],
            idempotency_key=found["idempotency_key"],
            timeout_s=float(found["timeout_s"]),
        )

    async def complete(self, assignment_id: str, output: JSON) -> None:
        await self._report(f"/workers/assignments/{assignment_id}/complete", {"output": output})

    async def fail(self, assignment_id: str, error: str, retryable: bool = True) -> None:
        body = {"error": error[:4000] or "failed", "retryable": retryable}
        await self._report(f"/workers/assignments/{assignment_id}/fail", body)

    async def heartbeat(self, agent_id: str) -> None:
        await self._post(f"/agents/{agent_id}/heartbeat", None, self._timeout_s)

    async def _report(self, path: str, body: dict[str, Any]) -> None:
        try:
            await self._post(path, body, self._timeout_s)
        except WorkerApiError as exc:
            if exc.status == 404:  # as in process: the task stopped waiting for this result
                raise AssignmentNotFound(exc.detail) from exc
            raise

    async def _post(self, path: str, body: Any, timeout_s: float) -> tuple[int, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(
            self._base + path,
            json=body,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            text = await response.text()
            try:
                payload: Any = json.loads(text) if text else None
            except ValueError:  # not from the API (a proxy's error page): keep the text
                payload = {"detail": text[:500]}
            if response.status >= 400:
                detail = payload.get("detail") if isinstance(payload, dict) else None
                raise WorkerApiError(response.status, str(detail or response.reason))
            return response.status, payload
