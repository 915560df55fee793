"""THE canary test in a real ``cadenza serve`` process on a SQLite file, its logs (JSON lines on
stderr, as configured by ``serve``) captured to a file: with redaction on, canaries planted in
every input/output/error path end up in no byte of the database directory (the database, its
WAL, the offloaded blobs) and no log line, while the running tasks and the HTTP peer saw the
real values and the API shows redacted values and where."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from tests.e2e.test_serve_cli import PASSWORD, _serve, _stop
from tests.integration.pii_canaries import CANARIES, failing, hits, inputs, peer, process
from tests.net import free_port

WS = "default"
DEADLINE_S = 60.0


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base, self.token = session, base, ""

    async def call(self, method: str, path: str, body: Any = None, want: int = 200) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.request(method, self.base + path, json=body, headers=headers) as r:
            found = await r.json(content_type=None)
            assert r.status == want, (method, path, r.status, found)
            return found

    async def until(self, path: str, done: Any) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while True:
            found = await self.call("GET", path)
            if done(found):
                return found
            assert loop.time() < deadline, f"{path}: {found}"
            await asyncio.sleep(0.1)


async def test_canaries_reach_no_byte_on_disk_and_no_log_line_of_a_real_server(
    tmp_path: Path,
) -> None:
    port = free_port()
    proc = await asyncio.to_thread(
        _serve, tmp_path, port, CADENZA_EGRESS_ALLOWED_HOSTS='["127.0.0.1"]'
    )
    try:
        async with aiohttp.ClientSession() as session, peer() as p:
            api = Api(session, f"http://127.0.0.1:{port}")
            login = {"username": "admin", "password": PASSWORD}
            api.token = (await api.call("POST", "/api/v1/auth/login", login))["access_token"]
            rules = {"enabled": True, "custom": [{"name": "employee", "pattern": "EMP-[0-9]{6}"}]}
            await api.call("PUT", f"/api/v1/workspaces/{WS}/redaction", rules)
            for doc in (process(p.url), failing(p.url)):
                body = {"document": doc, "publish": True}
                await api.call("POST", "/api/v1/processes/definitions", body, 201)
            start = {"process_id": "pii-canaries", "inputs": inputs()}
            iid = (await api.call("POST", "/api/v1/processes/instances", start, 201))["id"]
            approvals = await api.until(
                "/api/v1/execution/approvals",
                lambda rows: any(r["instance_id"] == iid for r in rows),
            )
            task = next(r["id"] for r in approvals if r["instance_id"] == iid)
            comment = f"ok {CANARIES['email']} {CANARIES['custom']}"
            signal = {"task_id": task, "payload": {"decision": "approve", "comment": comment}}
            await api.call("POST", f"/api/v1/processes/instances/{iid}/signal", signal)
            path = f"/api/v1/processes/instances/{iid}"
            done = await api.until(path, lambda b: b["status"] in ("completed", "failed"))
            big = {"process_id": "pii-fails", "inputs": inputs(big=True)}
            bad = (await api.call("POST", "/api/v1/processes/instances", big, 201))["id"]
            failed = await api.until(
                f"/api/v1/processes/instances/{bad}", lambda b: b["status"] == "failed"
            )
            events = await api.call("GET", f"{path}/events")
    finally:
        await asyncio.to_thread(_stop, proc)
    assert done["status"] == "completed", done["error"]
    assert done["outputs"]["email_len"] == len(CANARIES["email"])  # the task saw the real one
    assert any(CANARIES["iban"] in str(body) for body in p.received)  # so did the peer
    assert hits(str([done, failed, events])) == []
    assert {"inputs", "outputs"} <= {f["field"] for f in done["redacted"]}
    files = [f for f in tmp_path.rglob("*") if f.is_file() and f.name != "serve.log"]
    assert any(".blobs" in str(f) for f in files)
    assert hits(b"".join(f.read_bytes() for f in files)) == []
    log = (tmp_path / "serve.log").read_text()
    assert '"level": "info"' in log or '"level":"info"' in log  # JSON lines were captured
    assert hits(log) == []
