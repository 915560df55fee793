"""An offloaded error over the real API (docs/payloads.md): instance and task reads show the
error's preview as text and its marker in ``error_payload``, the lazy payload route serves
the whole text, and ``?expand=payloads`` puts it in place."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.api.harness import serve

LONG_PATH = "p" * 600  # the error quotes the refused URL: over the 256-byte threshold


def failing() -> dict[str, object]:
    return {
        "schema": "cadenza/v1",
        "id": "long-error",
        "name": "long error",
        "nodes": [
            {
                "id": "call",
                "type": "http",
                "config": {"method": "GET", "url": f"http://10.255.255.1/{LONG_PATH}"},
            }
        ],
        "edges": [],
    }


async def test_an_offloaded_error_reads_as_its_preview_with_a_lazy_link(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'errors.db'}"
    async with serve(url, payload_offload_bytes=256) as srv:
        admin = srv.admin
        body = {"document": failing(), "publish": True}
        assert (await admin.post("/api/v1/processes/definitions", body)).status == 201
        started = await admin.post("/api/v1/processes/instances", {"process_id": "long-error"})
        assert started.status == 201, started.body
        path = f"/api/v1/processes/instances/{started.body['id']}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while (detail := (await admin.get(path)).body)["status"] != "failed":
            assert loop.time() < deadline, detail
            await asyncio.sleep(0.05)
        marker = detail["error_payload"]
        assert marker is not None, detail
        assert marker["size"] > 256
        assert detail["error"] == marker["preview"] + "…"
        assert detail["error"].startswith("node 'call' failed: http: GET http://10.255.255.1/p")
        assert "$cadenza" not in detail["error"]
        task = detail["tasks"][-1]
        task_marker = task["error_payload"]
        assert task["error"] == task_marker["preview"] + "…"
        assert task["error"].startswith("http: GET http://10.255.255.1/p")
        listed = (
            await admin.get("/api/v1/execution/tasks", params={"instance_id": detail["id"]})
        ).body
        same = next(t for t in listed if t["id"] == task["id"])
        assert same["error_payload"]["sha256"] == task_marker["sha256"]
        whole_task = await admin.get(f"{path}/payloads/{task_marker['sha256']}")
        assert whole_task.status == 200, whole_task.body
        assert whole_task.body.startswith("http: GET")
        assert LONG_PATH in whole_task.body
        # the lazy link: the whole text
        whole = await admin.get(f"{path}/payloads/{marker['sha256']}")
        assert whole.status == 200, whole.body
        assert isinstance(whole.body, str)
        assert LONG_PATH in whole.body
        assert len(whole.body) > len(detail["error"])
        # expanded in place
        expanded = (await admin.get(path, params={"expand": "payloads"})).body
        assert expanded["error"] == whole.body
        assert expanded["error_payload"] is None
        assert expanded["tasks"][-1]["error"] == whole_task.body
        assert expanded["tasks"][-1]["error_payload"] is None
