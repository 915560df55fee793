"""Every mutating route leaves an audit row: the routes are enumerated from the app (like the
auth matrix), each is called successfully once, and the row carrying that call's request id
must be there with the expected action. Routes that change nothing are listed in ``EXEMPT``
with the reason; a new mutating route fails this test until it audits or is listed.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from tests.api.audit_spy import Appended, watch
from tests.api.audit_steps import admin, steps
from tests.api.fixtures import (
    NO_LIMITS,
    World,
    build_world,
    endpoints,
    probe,
)
from tests.api.harness import serve

from cadenza.application.audit import NEW_ID
from cadenza.infrastructure.sql.tables import audit
from cadenza.settings import McpServerSettings

pytestmark = pytest.mark.asyncio(loop_scope="module")

MUTATING = ("POST", "PUT", "PATCH", "DELETE")
MCP_SCRIPT = Path(__file__).resolve().parents[1] / "fakes" / "mcp_test_server.py"

# Routes that change nothing an operator audits. Keep it minimal: the test checks that each
# entry is a route of the app and that it is not also given a call in ``audit_steps.steps``.
EXEMPT: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/processes/definitions/validate"): "checks a document; stores nothing",
    # rotates the tokens of a session audited at login; a reused token is audited as
    # auth.refresh_reuse with the revocation (tests/api/test_refresh_rotation.py)
    ("POST", "/api/v1/auth/refresh"): "new tokens for an existing (audited) session",
    ("POST", "/api/v1/providers/{name}/test"): "a probe call to a provider; changes nothing",
    ("POST", "/api/v1/agents/{agent_id}/heartbeat"): "liveness of a worker, many per minute",
    ("POST", "/api/v1/workers/poll"): "a worker taking a task: run history, in the journal",
    ("POST", "/api/v1/workers/assignments/{assignment_id}/complete"): "a task result: journal",
    ("POST", "/api/v1/workers/assignments/{assignment_id}/fail"): "a task failure: journal",
    # a protocol endpoint: its mutations call the same services as the REST routes, which
    # audit (test_graphql_mutations_are_audited)
    ("POST", "/graphql"): "GraphQL; its mutations are audited by the services they call",
    # MCP: a tool call starts an instance through Processes.start, which audits it
    ("POST", "/mcp"): "MCP protocol messages; tool calls are audited as instance.start",
    ("DELETE", "/mcp"): "ends an MCP protocol session; changes nothing",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("audit-walk")
    server = McpServerSettings(
        name="test", command=sys.executable, args=[str(MCP_SCRIPT), "--transport", "stdio"]
    )
    async with serve(f"sqlite:///{tmp / 'walk.db'}", mcp_servers=[server], **NO_LIMITS) as srv:
        watch(srv.app)
        yield await build_world(srv)


def mutating(w: World) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in endpoints(w.srv.app) if e.method in MUTATING]


async def rows_for(w: World, request_id: str) -> list[Any]:
    async with w.srv.runtime.database().connect() as conn:
        found = await conn.execute(sa.select(audit).where(audit.c.request_id == request_id))
        return list(found.all())


async def test_the_exemption_list_is_minimal(world: World) -> None:
    routes = set(mutating(world))
    assert set(EXEMPT) - routes == set(), "an exempt route that the app does not have"
    assert set(EXEMPT) & set(steps()) == set(), "a route both exempt and exercised"


async def test_every_mutating_route_leaves_an_audit_row(world: World) -> None:
    calls = steps()
    missing = [r for r in mutating(world) if r not in EXEMPT and r not in calls]
    assert not missing, f"mutating routes with no audited call here: {missing}"
    wrong: list[str] = []
    log = world.srv.app.state.services.audit.log
    assert isinstance(log, Appended)
    for n, route in enumerate(r for r in mutating(world) if r not in EXEMPT):
        step = await calls[route](world)
        rid = f"audit-walk-{n}"
        r = await probe(
            step.client,
            route[0],
            step.path,
            json=step.body,
            headers={"X-Request-Id": rid},
        )
        if r.status != step.status:
            wrong.append(f"{route}: {r.status}, expected {step.status} ({r.body})")
            continue
        got = [(row.action, row.outcome) for row in await rows_for(world, rid)]
        if (step.action, "ok") not in got:
            wrong.append(f"{route}: audit rows {got}, expected {step.action}")
        # taken by the change's own transaction (a store's ``write_pending``, the engine's
        # batch), never appended after it (the known gaps are no route's success)
        after = sorted(e.action for e in log.rows if e.request_id == rid)
        if after:
            wrong.append(f"{route}: {after} appended after the change, not with it")
    assert not wrong, "\n".join(wrong)
    async with world.srv.runtime.database().connect() as conn:
        stmt = sa.select(audit.c.action).where(audit.c.target_id == NEW_ID)
        placeholders = (await conn.execute(stmt)).scalars().all()
    assert placeholders == [], "creates whose store did not take the audit row"


async def test_graphql_mutations_are_audited(world: World) -> None:
    query = 'mutation { startInstance(processId: "' + world.a.hello_id + '") { id } }'
    r = await probe(
        admin(world), "POST", "/graphql", json={"query": query}, headers={"X-Request-Id": "gql-1"}
    )
    assert r.status == 200, r.body
    assert not r.body.get("errors"), r.body
    iid = r.body["data"]["startInstance"]["id"]
    got = [(row.action, row.target_id) for row in await rows_for(world, "gql-1")]
    assert got == [("instance.start", iid)]
    log = world.srv.app.state.services.audit.log
    assert isinstance(log, Appended)
    assert [e.action for e in log.rows if e.request_id == "gql-1"] == []  # in the batch
