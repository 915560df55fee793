"""Instance operations through the API commit their audit row with the change, in the engine's
group-commit batch (SQLite, PostgreSQL, MariaDB): a batch that fails after its rows were
saved (``after-journal-before-commit``, injected in process) leaves neither the change nor
the row; a normal call leaves both, the row with the target's id (a start's: the new
instance's), the request id and the client address, and never appended on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from tests.api.audit_spy import Appended, watch
from tests.api.fixtures import (
    NO_LIMITS,
    approval_document,
    broken_document,
    module_database_url,
    ok,
    settled,
    start,
    waiting_approval,
)
from tests.api.harness import Client, Server, serve
from tests.batch_faults import BatchFaults
from tests.pg import BACKENDS

from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import audit

pytestmark = pytest.mark.asyncio(loop_scope="module")
INSTANCES = "/api/v1/processes/instances"


@dataclass
class Site:
    srv: Server
    appended: Appended

    @property
    def admin(self) -> Client:
        return self.srv.admin


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Site]:
    url = module_database_url(request, tmp_path_factory, "audit-ops")
    async with serve(url, **NO_LIMITS) as srv:
        for doc in (approval_document("ship"), broken_document("broken")):
            body = {"document": doc, "publish": True}
            ok(await srv.admin.post("/api/v1/processes/definitions", body), 201)
        yield Site(srv, watch(srv.app))


@dataclass(frozen=True)
class Call:
    """One operation, ready to be called: what it must record and how to see its change."""

    path: str
    body: Any
    action: str
    target: tuple[str, str | None]  # (type, id); None: the id the call answers (a start)
    state: Callable[[], Awaitable[int]]  # changes when the operation commits
    status: int = 200


async def _journal_length(site: Site, instance_id: str) -> int:
    return len(await site.srv.runtime.store.journal(instance_id))


async def _start(site: Site) -> Call:
    async def instances() -> int:
        return sum((await site.srv.runtime.store.count_instances()).values())

    body = {"process_id": "ship"}
    return Call(INSTANCES, body, "instance.start", ("instance", None), instances, 201)


async def _cancel(site: Site) -> Call:
    iid = await start(site.admin, "ship")
    await waiting_approval(site.admin, iid)
    state = lambda: _journal_length(site, iid)  # noqa: E731
    return Call(f"{INSTANCES}/{iid}/cancel", {}, "instance.cancel", ("instance", iid), state)


async def _approve_by_signal(site: Site) -> Call:
    iid = await start(site.admin, "ship")
    task = await waiting_approval(site.admin, iid)
    body = {"task_id": task, "payload": {"decision": "approve"}}
    state = lambda: _journal_length(site, iid)  # noqa: E731
    return Call(f"{INSTANCES}/{iid}/signal", body, "task.approve", ("task", task), state)


async def _reject(site: Site) -> Call:
    iid = await start(site.admin, "ship")
    task = await waiting_approval(site.admin, iid)
    state = lambda: _journal_length(site, iid)  # noqa: E731
    path = f"/api/v1/execution/tasks/{task}/reject"
    return Call(path, {}, "task.reject", ("task", task), state)


async def _retry(site: Site) -> Call:
    iid = await start(site.admin, "broken")
    await settled(site.admin, iid, "failed")
    state = lambda: _journal_length(site, iid)  # noqa: E731
    return Call(f"{INSTANCES}/{iid}/retry", None, "instance.retry", ("instance", iid), state)


OPERATIONS: dict[str, Callable[[Site], Awaitable[Call]]] = {
    "start": _start,
    "cancel": _cancel,
    "approve": _approve_by_signal,
    "reject": _reject,
    "retry": _retry,
}


async def rows_of(site: Site, request_id: str) -> list[dict[str, Any]]:
    async with site.srv.runtime.database().connect() as conn:
        found = await conn.execute(sa.select(audit).where(audit.c.request_id == request_id))
        return [dict(r._mapping) for r in found.all()]


@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_an_instance_operation_and_its_audit_row_commit_together(
    site: Site, operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = await OPERATIONS[operation](site)
    store = site.srv.runtime.store
    assert isinstance(store, SqlStore)
    faults = BatchFaults()
    faults.install(store, monkeypatch)
    failing, passing = f"{operation}-fails", f"{operation}-commits"
    faults.when_audited(lambda e: e.request_id == failing, lambda: RuntimeError("injected"))
    before = await call.state()

    r = await site.admin.post(call.path, call.body, headers={"X-Request-Id": failing})
    assert r.status == 500, r.body
    assert [e.request_id for b in faults.batches for e in b].count(failing) == 1  # was saved
    assert await rows_of(site, failing) == []
    assert await call.state() == before  # nor the change

    r = await site.admin.post(call.path, call.body, headers={"X-Request-Id": passing})
    assert r.status == call.status, r.body
    assert await call.state() != before
    target_type, target_id = call.target
    expected = target_id if target_id is not None else r.body["id"]
    got = [
        (x["action"], x["target_type"], x["target_id"], x["client_ip"], x["outcome"])
        for x in await rows_of(site, passing)
    ]
    assert got == [(call.action, target_type, expected, "127.0.0.1", "ok")]
    assert [e.request_id for e in site.appended.rows if e.request_id == passing] == []
