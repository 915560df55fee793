"""A real ``cadenza serve`` with the built console, and a small JSON client to set up data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "src" / "cadenza" / "web" / "dist"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
USERNAME = "admin"
PASSWORD = "browser-test-admin-password"


def unavailable(reason: str) -> None:
    """Fail in CI (a skipped test there is a failure), skip on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (a skipped browser test in CI is a failure)")
    pytest.skip(reason)


@dataclass
class Console:
    """The running server: its URL, and an admin token for API calls made by the tests."""

    url: str
    proc: subprocess.Popen[str]
    log: Path
    token: str = field(default="")

    def call(
        self, method: str, path: str, body: object | None = None, *, workspace: str | None = None
    ) -> Any:
        """The admin's call, in its first workspace (``default``) or in ``workspace``."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if workspace:
            request.add_header("X-Workspace", workspace)
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                text = reply.read().decode()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read().decode()}") from exc
        return json.loads(text) if text else None

    def wait_instance(
        self, instance_id: str, status: str, timeout: float = 30, *, workspace: str | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            path = f"/api/v1/processes/instances/{instance_id}"
            found: dict[str, Any] = self.call("GET", path, workspace=workspace)
            if found["status"] == status or time.monotonic() > deadline:
                assert found["status"] == status, found
                return found
            time.sleep(0.2)


def start(tmp: Path, **settings: str) -> Console:
    """``cadenza serve`` on a SQLite file in ``tmp``; ``settings``: more ``CADENZA_*`` variables."""
    port = free_port()
    log = tmp / "serve.log"
    env = {
        "PATH": "/usr/bin:/bin",
        # the code (and the built console) of this checkout, whatever the venv has installed
        "PYTHONPATH": str(ROOT / "src"),
        "HOME": str(tmp),
        "CADENZA_DATABASE_URL": f"sqlite:///{tmp / 'console.db'}",
        "CADENZA_ADMIN_PASSWORD": PASSWORD,
        "CADENZA_PORT": str(port),
        # one live setting fixed by the environment (to its default value): shown read-only
        "CADENZA_MCP_BREAKER_FAILURES": "5",
        # values over 16 KiB go to the blob store (<db>.blobs): the console shows a preview
        "CADENZA_PAYLOAD_OFFLOAD_BYTES": "16384",
        **settings,
    }
    with log.open("a") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "cadenza", "serve", "--port", str(port)],
            env=env,
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    console = Console(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {log.read_text()}")
        try:
            with urllib.request.urlopen(console.url + "/health", timeout=1) as reply:
                if reply.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline:
                stop(console)
                raise AssertionError(f"serve not ready in 60 s: {log.read_text()}") from None
            time.sleep(0.2)
    tokens = console.call(
        "POST", "/api/v1/auth/login", {"username": USERNAME, "password": PASSWORD}
    )
    console.token = tokens["access_token"]
    return console


def stop(console: Console) -> None:
    if console.proc.poll() is None:
        console.proc.send_signal(signal.SIGTERM)
        try:
            console.proc.wait(30)
        except subprocess.TimeoutExpired:
            console.proc.kill()
            console.proc.wait()


async def shot(page: Page, name: str, *, full: bool = False) -> None:
    """Keep a screenshot of a main screen for review (tests/browser/artifacts, not committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    # settle first: no loading spinner, and the last transition (menus, modals) finished
    await expect(page.locator(".ant-spin-spinning")).to_have_count(0, timeout=10_000)
    await page.wait_for_timeout(400)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)
