"""``cadenza serve`` and the client commands as a user runs them: real processes, SQLite."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a-long-admin-password"


def _env(tmp: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        "CADENZA_DATABASE_URL": f"sqlite:///{tmp / 'c.db'}",
        "CADENZA_SERVER": f"http://127.0.0.1:{port}",
        "CADENZA_PORT": str(port),
        **extra,
    }


def _wait_ready(port: int, proc: subprocess.Popen[str], log_path: Path) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("serve did not become ready in 30 s")


def _serve(tmp: Path, port: int, **extra: str) -> subprocess.Popen[str]:
    with (tmp / "serve.log").open("a") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "cadenza", "serve"],
            env=_env(tmp, port, CADENZA_ADMIN_PASSWORD=PASSWORD, **extra),
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    _wait_ready(port, proc, tmp / "serve.log")
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cli(tmp: Path, port: int, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cadenza", *args],
        env=_env(tmp, port),
        cwd=tmp,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = free_port()
    proc = _serve(tmp_path, port)
    try:
        yield tmp_path, port
    finally:
        _stop(proc)


def test_serve_refuses_to_start_without_an_admin_password(tmp_path: Path) -> None:
    port = free_port()
    r = subprocess.run(
        [sys.executable, "-m", "cadenza", "serve"],
        env=_env(tmp_path, port),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2
    assert "CADENZA_ADMIN_PASSWORD" in r.stderr


def test_login_apply_start_ps_logs(server: tuple[Path, int]) -> None:
    tmp, port = server
    r = cli(tmp, port, "login", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    creds = tmp / ".config" / "cadenza" / "credentials.json"
    assert oct(creds.stat().st_mode & 0o777) == "0o600"

    r = cli(tmp, port, "apply", str(ROOT / "examples" / "fanout.yaml"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "fanout-join version 1 published"

    r = cli(tmp, port, "start", "fanout-join", "-i", "ticket=Error on save", "-i", 'tags=["x"]')
    assert r.returncode == 0, r.stderr
    instance_id = r.stdout.strip()

    r = cli(tmp, port, "logs", instance_id, "--follow")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "InstanceStarted" in lines[0]
    assert "InstanceCompleted" in lines[-1]
    seqs = [int(line.split()[0]) for line in lines]
    assert seqs == list(range(1, len(seqs) + 1))  # nothing lost, nothing twice

    r = cli(tmp, port, "ps", "--status", "completed")
    assert r.returncode == 0, r.stderr
    assert instance_id in r.stdout

    r = cli(tmp, port, "start", "fanout-join", "-i", "ticket=Error 2", "-i", "tags=[]", "--wait")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["label"] == "bug"


def test_client_errors_are_clear(server: tuple[Path, int]) -> None:
    tmp, port = server
    r = cli(tmp, port, "ps")
    assert r.returncode == 2
    assert "HTTP 401" in r.stderr
    assert "missing credentials" in r.stderr
    cli(tmp, port, "login", "--password-stdin", stdin=PASSWORD + "\n")
    r = cli(tmp, port, "start", "no-such-process")
    assert r.returncode == 2
    assert "HTTP 404" in r.stderr
    assert "no-such-process" in r.stderr


SLOW = """
schema: cadenza/v1
id: slow
nodes:
  - id: call
    type: http
    config: {method: GET, url: "http://127.0.0.1:PORT/slow"}
"""


def _slow_server(port: int, delay: float) -> subprocess.Popen[str]:
    code = (
        "import asyncio,sys\n"
        "from aiohttp import web\n"
        "async def slow(r):\n"
        f"    await asyncio.sleep({delay})\n"
        "    return web.json_response({'ok': True})\n"
        "app = web.Application(); app.router.add_get('/slow', slow)\n"
        f"web.run_app(app, host='127.0.0.1', port={port}, print=None)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], text=True)
    time.sleep(1.0)
    return proc


def _instance_status(tmp: Path) -> str:
    with sqlite3.connect(tmp / "c.db") as db:
        (status,) = db.execute("SELECT status FROM instances").fetchone()
    return str(status)


@pytest.mark.parametrize("grace", ["30", "0"])
def test_sigterm_finishes_or_releases_running_tasks(tmp_path: Path, grace: str) -> None:
    """With a grace period the running task finishes before exit; without one its lease is
    released at once, and the next server finishes the instance: nothing is lost."""
    port, http_port = free_port(), free_port()
    slow = _slow_server(http_port, 2.0)
    extra = {"CADENZA_EGRESS_ALLOW_PRIVATE": "true", "CADENZA_SHUTDOWN_GRACE_S": grace}
    (tmp_path / "slow.yaml").write_text(SLOW.replace("PORT", str(http_port)))
    try:
        proc = _serve(tmp_path, port, **extra)
        cli(tmp_path, port, "login", "--password-stdin", stdin=PASSWORD + "\n")
        assert cli(tmp_path, port, "apply", "slow.yaml").returncode == 0
        assert cli(tmp_path, port, "start", "slow").returncode == 0
        time.sleep(0.5)  # the http call is in flight
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) in (0, -signal.SIGTERM)  # uvicorn re-raises it after shutdown
        if grace != "0":
            assert _instance_status(tmp_path) == "completed"
            return
        assert _instance_status(tmp_path) == "running"
        with sqlite3.connect(tmp_path / "c.db") as db:
            (expires,) = db.execute(
                "SELECT lease_expires_at FROM tasks WHERE node_id = 'call'"
            ).fetchone()
        assert expires == 0  # released, not left to expire
        again = _serve(tmp_path, port, **extra)
        try:
            deadline = time.monotonic() + 20
            while _instance_status(tmp_path) == "running" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _instance_status(tmp_path) == "completed"
        finally:
            _stop(again)
    finally:
        slow.terminate()
        slow.wait()
