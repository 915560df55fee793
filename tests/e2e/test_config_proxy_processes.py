"""MCP servers stored through the API are used by a worker whose MCP calls go through the
MCP proxy, without a restart of any process.

Real processes on one database (a SQLite file; PostgreSQL) and one Redis bus:
``cadenza serve --role api`` (runs no tasks), ``cadenza mcp-proxy`` given the database, and
``cadenza worker`` with ``mcp_proxy_url``. A shared server stored through the API is applied
by the proxy (its log says so) and its tool called by the worker's instance; a workspace's
own server of the same name, stored next, is what that workspace's nodes reach from then on
(the worker names the workspace of each call, the proxy routes it); another workspace still
reaches the shared one. Deleted, the shared server is gone for the next call. Every
process's refresh interval is an hour: only the bus message can have told the proxy. Waits
are conditions with deadlines, never sleeps.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.e2e import config_harness as h
from tests.net import free_port
from tests.pg import backend_url

MCP_SCRIPT = str(Path(__file__).resolve().parents[1] / "fakes" / "mcp_test_server.py")
PROXY_TOKEN = "proxy-service-token-" + "p" * 32
APPLIED = "runtime configuration applied: mcp_server 'tools' ({scope})"
REMOVED = "runtime configuration removed: mcp_server 'tools' (*)"
WORKER_RUNNING = "running on "


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


async def test_stored_mcp_servers_reach_a_worker_through_the_mcp_proxy(
    tmp_path: Path, url: str, redis_bus_url: str
) -> None:
    env = h.env(tmp_path, url, redis_bus_url)
    api_port, proxy_port = free_port(), free_port()
    base, proxy = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{proxy_port}"
    proxy_env = {**env, "CADENZA_MCP_PROXY_TOKEN": PROXY_TOKEN}
    worker_env = {**proxy_env, "CADENZA_MCP_PROXY_URL": f"{proxy}/mcp"}
    logs = {name: tmp_path / f"{name}.log" for name in ("api", "proxy", "worker")}
    async with aiohttp.ClientSession() as http:
        api_argv = ["serve", "--role", "api", "--port", str(api_port)]
        with h.process(api_argv, env, logs["api"]) as api:
            await h.answers(http, f"{base}/health", api, logs["api"])  # the schema is there
            proxy_argv = ["mcp-proxy", "--port", str(proxy_port)]
            with (
                h.process(proxy_argv, proxy_env, logs["proxy"]) as mcp_proxy,
                h.process(["worker"], worker_env, logs["worker"]) as worker,
            ):
                await h.answers(http, f"{proxy}/health", mcp_proxy, logs["proxy"])
                await h.until(
                    "the worker runs",
                    lambda: WORKER_RUNNING in logs["worker"].read_text(errors="replace"),
                    logs["worker"],
                )
                # the API and worker (cache-...) and the proxy (mcp-proxy-...) follow the bus
                await h.until("two follow the bus", lambda: h.followers(redis_bus_url), logs["api"])
                await h.until(
                    "the proxy follows the bus",
                    lambda: h.followers(redis_bus_url, "mcp-proxy-", 1),
                    logs["proxy"],
                )
                async with h.api(http, base) as auth:
                    await _scenario(http, base, auth, tmp_path, logs)
                assert worker.poll() is None, "the worker was never restarted"
                assert mcp_proxy.poll() is None, "the proxy was never restarted"
    worker_text = logs["worker"].read_text(errors="replace")
    assert "applied: mcp_server" not in worker_text  # the worker holds no MCP session


async def _scenario(
    http: aiohttp.ClientSession,
    base: str,
    auth: dict[str, str],
    tmp: Path,
    logs: dict[str, Path],
) -> None:
    proxy_log = logs["proxy"]

    def applied(scope: str, times: int = 1) -> bool:
        return h.count(proxy_log, APPLIED.format(scope=scope)) >= times

    servers = f"{base}/api/v1/config/mcp-servers/tools"
    shared = {"command": sys.executable, "args": [MCP_SCRIPT, "--transport", "stdio"]}
    status, saved = await h.call(http, "PUT", f"{servers}?scope=shared", auth, shared)
    assert status == 200, saved
    await h.until("the proxy added it", lambda: applied("*"), proxy_log)
    for pid, tool, args in (
        ("echo-tools", "echo", {"text": "{{ inputs.q }}"}),
        ("which-tools", "flaky_definition", {}),
    ):
        await h.publish(http, base, auth, _doc(pid, tool, args))
    done = await h.run(
        http, base, auth, logs["worker"], "echo-tools", {"q": "via proxy"}, "completed"
    )
    assert "via proxy" in json.dumps(done["outputs"]), done
    done = await h.run(http, base, auth, logs["worker"], "which-tools", {}, "completed")
    assert "v1" in json.dumps(done["outputs"]), done  # the shared server

    # the admin's workspace ("default") stores its own "tools": flipped, it answers v2
    flip = tmp / "flipped"
    flip.touch()
    own = {**shared, "env": {"MCP_TEST_FLIP": str(flip)}}
    status, saved = await h.call(http, "PUT", servers, auth, own)
    assert (status, saved["scope"]) == (200, "workspace"), saved
    await h.until("the proxy added the workspace's", lambda: applied("default"), proxy_log)
    done = await h.run(http, base, auth, logs["worker"], "which-tools", {}, "completed")
    assert "v2" in json.dumps(done["outputs"]), done  # routed to the workspace's own

    status, _ = await h.call(http, "DELETE", f"{servers}?scope=shared", auth)
    assert status == 204
    await h.until("the proxy removed it", lambda: h.count(proxy_log, REMOVED) >= 1, proxy_log)
    done = await h.run(http, base, auth, logs["worker"], "which-tools", {}, "completed")
    assert "v2" in json.dumps(done["outputs"]), done  # its own is still there
    status, _ = await h.call(http, "DELETE", servers, auth)
    assert status == 204
    removed = "runtime configuration removed: mcp_server 'tools' (default)"
    await h.until(
        "the proxy removed the workspace's", lambda: h.count(proxy_log, removed), proxy_log
    )
    gone = await h.run(http, base, auth, logs["worker"], "which-tools", {}, "failed")
    assert "unknown MCP server 'tools'" in json.dumps(gone), gone


def _doc(pid: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    config = {"server": "tools", "tool": tool, "arguments": arguments}
    return {
        "schema": "cadenza/v1",
        "id": pid,
        "name": pid,
        "inputs": {"type": "object", "properties": {"q": {"type": "string"}}},
        "nodes": [{"id": "call", "type": "tool", "config": config}],
        "outputs": {"out": "{{ nodes.call.output }}"},
    }
