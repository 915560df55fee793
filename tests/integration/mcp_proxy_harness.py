"""Real ``cadenza mcp-proxy`` processes and the in-repo MCP test server as their upstream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from tests.net import free_port, wait_listening

from cadenza.domain.json import JSONObject

SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "fakes" / "mcp_test_server.py"
TOKEN = "proxy-service-token-" + "s" * 24  # >= 32 characters
METRICS_TOKEN = "proxy-metrics-token-" + "m" * 24
# A cold interpreter imports the SDK, uvicorn and the upstream's SDK in about 1-3 s here.
START_TIMEOUT_S = 60.0


def stdio_upstream(name: str, log: Path, gate: Path) -> JSONObject:
    """The test server as a stdio child of the proxy (``CADENZA_MCP_SERVERS`` entry)."""
    return {
        "name": name,
        "command": sys.executable,
        "args": [str(SERVER_SCRIPT), "--transport", "stdio"],
        "env": {"MCP_TEST_LOG": str(log), "MCP_TEST_GATE": str(gate)},
    }


@contextmanager
def http_upstream(log: Path, gate: Path) -> Iterator[str]:
    """The test server over streamable HTTP (outlives proxy restarts); its URL."""
    port = free_port()
    env = dict(os.environ, MCP_TEST_LOG=str(log), MCP_TEST_GATE=str(gate))
    cmd = [sys.executable, str(SERVER_SCRIPT), "--transport", "http", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env)
    try:
        wait_listening(proc, port, START_TIMEOUT_S, "the MCP test server")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def calls(log: Path, tool: str | None = None) -> list[JSONObject]:
    """The upstream's call log, optionally of one tool only."""
    if not log.exists():
        return []
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return [r for r in records if tool is None or r.get("tool") == tool]


@dataclass
class ProxyProcess:
    """One ``cadenza mcp-proxy`` on a fixed port (restarts reuse it)."""

    servers: list[JSONObject]
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def env(self) -> dict[str, str]:
        env = dict(os.environ, CADENZA_MCP_PROXY_TOKEN=TOKEN, CADENZA_LOG_JSON="false")
        env["CADENZA_MCP_SERVERS"] = json.dumps(self.servers)
        env.update(self.settings)
        return env

    def start(self) -> None:
        """Start and wait until ``/health/readiness`` answers 200 (catalogs loaded)."""
        cmd = [sys.executable, "-m", "cadenza", "mcp-proxy", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=self.env())
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.proc.poll() is None, "the MCP proxy exited early"
            try:
                if httpx2.get(f"{self.base}/health/readiness", timeout=1.0).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, "the MCP proxy did not become ready"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            # SIGTERM is a stop request (docker stop, pod termination): a clean exit
            assert self.proc.wait(timeout=30) == 0, "the MCP proxy did not exit 0 on SIGTERM"


@contextmanager
def running_proxy(servers: list[JSONObject], **settings: str) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(servers, dict(settings))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
