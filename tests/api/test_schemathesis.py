"""Schemathesis against the real server's OpenAPI schema, authenticated as the first admin:
no 5xx, and every response conforms to the schema (documented status code, content type,
headers and body), for positive and negative examples of every operation. Bounded (a few
examples per operation, no shrinking, the same examples every run) to run in under a minute.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, CheckFunction, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance
from tests.api.fixtures import matrix_server

# Left out, each for a reason:
EXCLUDED = [
    # streams never end: Schemathesis would wait forever for the body (SSE; the WebSocket
    # and GraphQL subscriptions are not in the OpenAPI schema). The auth and tenancy
    # matrices cover them.
    ("GET", "/api/v1/events/stream"),
    ("GET", "/api/v1/execution/tasks/stream"),
    # could lock the test out: disabling the admin, dropping its admin flag or changing its
    # password (the route refuses only the first two for the caller itself)
    ("PATCH", "/api/v1/users/{user_id}"),
    # end the session the run signs in with (tests/api/test_sessions.py covers them)
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/logout-all"),
    # could delete workspaces the run depends on ("default" is refused with 409)
    ("DELETE", "/api/v1/workspaces/{workspace_id}"),
]
# Bodies validated beyond what a JSON Schema can say, so a schema-valid body may rightly get
# 422: a definition (graph rules: dangling edges, cycles, per-type config) and an agent (its
# config keys depend on its type), runtime configuration (a provider or MCP server is saved
# only after a test call or handshake succeeds, its URL only under the URL policy; a live
# setting's type depends on its name). Everything else must accept schema-valid data.
SEMANTIC = {
    ("POST", "/api/v1/processes/definitions"),
    ("POST", "/api/v1/agents/register"),
    ("PATCH", "/api/v1/agents/{agent_id}"),
    ("PUT", "/api/v1/config/providers/{provider}"),
    ("PUT", "/api/v1/config/mcp-servers/{server}"),
    ("PUT", "/api/v1/config/settings/{setting}"),
}
MAX_EXAMPLES = 10
LONG_POLL = "/api/v1/workers/poll"  # its timeout_s is capped so an example cannot wait 30 s


@dataclass
class Live:
    base: str
    token: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The full server on a loopback port, run by its own event loop in a thread, because
    Schemathesis drives its requests synchronously."""
    db: Path = tmp_path_factory.mktemp("schemathesis") / "api.db"
    ready = threading.Event()
    found: dict[str, object] = {}
    errors: list[BaseException] = []

    async def main() -> None:
        try:
            async with matrix_server(f"sqlite:///{db}") as srv:
                assert srv.admin.token is not None
                stop = asyncio.Event()
                found.update(live=Live(srv.base, srv.admin.token), stop=stop)
                found["loop"] = asyncio.get_running_loop()
                ready.set()
                await stop.wait()
        except BaseException as exc:  # reported by the fixture, not lost in the thread
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="api-under-test")
    thread.start()
    ready.wait(60)
    try:
        if errors:
            raise RuntimeError("the server did not start") from errors[0]
        live = found["live"]
        assert isinstance(live, Live)
        yield live
    finally:
        loop, stop = found.get("loop"), found.get("stop")
        if isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event):
            loop.call_soon_threadsafe(stop.set)
        thread.join(60)


def _prepare(case: Case[Any]) -> None:
    if case.path == LONG_POLL and isinstance(case.body, dict):
        timeout = case.body.get("timeout_s")
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            case.body["timeout_s"] = min(timeout, 0.1)


def _check(
    operation: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    live: Live,
    calls: list[str],
) -> str | None:
    """Run one operation's examples; the failure, if any, as text."""

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples every run: a stable gate
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report the first failure
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case[Any]) -> None:
        _prepare(case)
        calls.append(operation.label)
        case.call_and_validate(
            headers={"Authorization": f"Bearer {live.token}"}, timeout=30, excluded_checks=skip
        )

    semantic = (operation.method.upper(), operation.path) in SEMANTIC
    skip: list[CheckFunction] = [positive_data_acceptance] if semantic else []
    try:
        run()
    except Unsatisfiable:
        return None  # nothing to negate (no parameters, or free-form strings only)
    except (Exception, BaseExceptionGroup) as exc:  # all failures are reported together
        return f"{operation.label} [{mode.value}]: {exc}"
    return None


def test_api_conforms_to_its_schema(live: Live) -> None:
    """Schemathesis' pytest integration (``from_fixture``) fails on pytest 9 (it reads
    ``Function._nodeid``), so the operations are walked here, each under its own Hypothesis
    test, and every failure is reported at the end."""
    schema: schemathesis.BaseSchema = schemathesis.openapi.from_url(f"{live.base}/openapi.json")
    for method, path in EXCLUDED:
        schema = schema.exclude(method=method, path=path)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # a malformed operation in the schema
        operations.append(result.ok())
    assert len(operations) >= 40
    calls: list[str] = []
    failures = [
        found
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (found := _check(operation, mode, live, calls)) is not None
    ]
    assert not failures, "\n\n".join(failures)
    assert {op.label for op in operations} <= set(calls), "an operation was never called"
    assert len(calls) >= 5 * len(operations)
