"""PII redaction over the real API on a SQLite file: the rules' route (admins, problems,
tenancy), and THE canary test — with redaction on, canaries of every kind planted in every
input/output/error path (instance inputs, a transform's output, an http node's request and
response, a failing node's error, an llm node's prompt and answer, an agent's model
messages, an approval's decision sent as a signal, a cancel reason) are found neither in the
database file (nor its WAL) nor in the logs, while the running tasks and the HTTP peer saw
the real values and the API shows redacted values with the list of redacted fields."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from tests.api.fixtures import NO_LIMITS, WS_A, World, build_world, eventually, ok, settled
from tests.api.harness import Client, serve
from tests.integration.pii_canaries import (
    ALL_TEXT,
    CANARIES,
    failing,
    hits,
    inputs,
    peer,
    process,
)

from cadenza.application.identity import Role
from cadenza.infrastructure.observability.logging import configure_logging

pytestmark = pytest.mark.asyncio(loop_scope="module")
RULES = f"/api/v1/workspaces/{WS_A}/redaction"
ON = {
    "enabled": True,
    "custom": [{"name": "employee", "pattern": "EMP-[0-9]{6}", "replacement": "[employee]"}],
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    db = tmp_path_factory.mktemp("pii") / "pii.db"
    log = io.StringIO()
    handler = configure_logging(json=True, level="INFO", stream=log)
    try:
        async with serve(f"sqlite:///{db}", **NO_LIMITS, egress_allowed_hosts=["127.0.0.1"]) as srv:
            w = await build_world(srv)
            w.notes.update(db=db, log=log)
            yield w
    finally:
        logging.getLogger().removeHandler(handler)


def admin(w: World) -> Client:
    return w.members[Role.ADMIN]


# ---- the rules ------------------------------------------------------------------------------
async def test_off_by_default_then_one_switch_turns_every_detector_on(world: World) -> None:
    assert ok(await admin(world).get(RULES)) == {
        "workspace_id": WS_A,
        "enabled": False,
        "detectors": ["email", "phone", "card", "iban", "api_key"],
        "custom": [],
        "updated_at": None,
        "updated_by": None,
    }
    put = ok(await admin(world).request("PUT", RULES, {"enabled": True}))
    assert put["enabled"] is True
    assert put["detectors"] == [
        "email",
        "phone",
        "card",
        "iban",
        "api_key",
    ]
    assert put["updated_by"] == f"user:{world.a.user_id}"
    off = ok(await admin(world).request("PUT", RULES, {"enabled": False}))
    assert off["enabled"] is False


@pytest.mark.parametrize("role", [*Role, None], ids=[*(r.value for r in Role), "system-admin"])
async def test_only_workspace_and_system_admins_see_and_change_the_rules(
    world: World, role: Role | None
) -> None:
    caller = world.members[role] if role else world.srv.admin.as_(world.srv.admin.token, WS_A)
    want = 200 if role in (Role.ADMIN, None) else 403
    assert (await caller.get(RULES)).status == want
    assert (await caller.request("PUT", RULES, {"enabled": False})).status == want


async def test_another_workspace_rules_are_not_found(world: World) -> None:
    assert (await world.b_admin.get(RULES)).status == 404
    assert (await world.b_admin.request("PUT", RULES, {"enabled": True})).status == 404


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"enabled": True, "detectors": ["ssn"]}, "unknown detector"),
        ({"enabled": True, "custom": [{"name": "x", "pattern": "(a"}]}, "not an RE2 pattern"),
        ({"enabled": True, "custom": [{"name": "x", "pattern": "a(?=b)"}]}, "RE2"),
        ({"enabled": True, "custom": [{"name": "x", "pattern": "a*"}]}, "empty string"),
        ({"enabled": True, "custom": [{"name": "email", "pattern": "x"}]}, "built-in"),
        ({"enabled": True, "custom": [{"name": "x", "pattern": "y" * 501}]}, ""),
    ],
)
async def test_a_bad_rule_is_refused_with_422(
    world: World, body: dict[str, Any], reason: str
) -> None:
    r = await admin(world).request("PUT", RULES, body)
    assert r.status == 422, r.body
    assert reason in str(r.body)


# ---- the canaries ---------------------------------------------------------------------------
async def _signal_approval(c: Client, iid: str, comment: str) -> None:
    async def waiting() -> str | None:
        rows = ok(await c.get("/api/v1/execution/approvals"))
        return next((r["id"] for r in rows if r["instance_id"] == iid), None)

    task = await eventually(waiting, "the approval")
    body = {"task_id": task, "payload": {"decision": "approve", "comment": comment}}
    ok(await c.post(f"/api/v1/processes/instances/{iid}/signal", body))


async def test_canaries_are_in_no_stored_byte_and_no_log_line(world: World) -> None:
    c = admin(world)
    ok(await c.request("PUT", RULES, ON))
    async with peer() as p:
        for doc in (process(p.url), failing(p.url)):
            ok(
                await c.post("/api/v1/processes/definitions", {"document": doc, "publish": True}),
                201,
            )
        start = {"process_id": "pii-canaries", "inputs": inputs()}
        iid = ok(await c.post("/api/v1/processes/instances", start), 201)["id"]
        comment = f"approved by {CANARIES['email']} ({CANARIES['custom']})"
        await _signal_approval(c, iid, comment)
        done = await settled(c, iid, "completed")
        big = {"process_id": "pii-fails", "inputs": inputs(big=True)}  # offloaded to a blob
        bad = ok(await c.post("/api/v1/processes/instances", big), 201)
        failed = await settled(c, bad["id"], "failed")
        expanded = ok(await c.get(f"/api/v1/processes/instances/{bad['id']}?expand=payloads"))
        assert expanded["inputs"]["big"].startswith("[email] [phone]")  # the blob, redacted
        held = ok(await c.post("/api/v1/processes/instances", start), 201)["id"]
        reason = {"reason": f"cancelled, call {CANARIES['phone']} or {CANARIES['email']}"}
        ok(await c.post(f"/api/v1/processes/instances/{held}/cancel", reason))
        await settled(c, held, "cancelled")
        quoting = logging.getLogger("cadenza.test")
        quoting.warning("a line of %s quoting %s", WS_A, ALL_TEXT, extra={"workspace_id": WS_A})
        quoting.warning("a line of no workspace quoting %s", CANARIES["email"])
        events = ok(await c.get(f"/api/v1/processes/instances/{iid}/events"))
        cancelled = ok(await c.get(f"/api/v1/processes/instances/{held}/events"))
    # the running tasks and the peer saw the real values
    assert done["outputs"]["email_len"] == len(CANARIES["email"])
    assert any(CANARIES["card"] in str(body) for body in p.received)
    # the API shows redacted values and where
    shown = [done, failed, expanded, events, cancelled]
    assert hits(str(shown)) == [], hits(str(shown))
    assert done["inputs"]["email"] == "[email]"
    assert "[employee]" in done["outputs"]["comment"]
    where = {(f["field"], f["path"]) for f in done["redacted"]}
    assert {("inputs", "$.email"), ("inputs", "$.text"), ("outputs", "$.comment")} <= where
    kinds = {d for f in done["redacted"] for d in f["detectors"]}
    assert kinds == {"email", "phone", "card", "iban", "api_key", "employee"}
    fields = {(t["node_id"], f["field"]) for t in done["tasks"] for f in t["redacted"]}
    assert {("ask", "detail"), ("ask", "output"), ("compute", "output")} <= fields
    assert {("call", "output"), ("bad", "error"), ("say", "output"), ("think", "output")} <= fields
    assert "[email]" in str(failed["error"])
    assert ("error", "$") in {(f["field"], f["path"]) for f in failed["redacted"]}
    # nothing in the database file, its WAL, the offloaded blobs, or the logs
    db: Path = world.notes["db"]
    files = [f for f in db.parent.rglob("*") if f.is_file() and f.name != "token-secret"]
    assert any(".blobs" in str(f) for f in files)  # the big input was offloaded
    stored = b"".join(f.read_bytes() for f in files)
    assert hits(stored) == []
    text = world.notes["log"].getvalue()
    # the pipeline ran and redacted: the workspace's own rules where the line names it
    assert f"a line of {WS_A} quoting [email] [phone] [card] [iban] [secret] [employee]" in text
    assert "a line of no workspace quoting [email]" in text
    assert hits(text) == []
