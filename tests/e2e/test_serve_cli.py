"""``cadenza serve`` and the client commands as a user runs them: real processes, SQLite."""

from __future__ import annotations

import json
import os
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
# upper bounds, not waits: generous so that a loaded machine (load 8 on 2 cores: ~40 s to
# import and start) is not mistaken for a failure
READY_TIMEOUT_S = 120.0
EXIT_TIMEOUT_S = 120.0


def _env(tmp: Path, port: int, **extra: str) -> dict[str, str]:
    # PYTHONPATH passes through: the servers run the code under test, not another checkout's
    inherited = {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}
    return {
        **inherited,
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        "CADENZA_DATABASE_URL": f"sqlite:///{tmp / 'c.db'}",
        "CADENZA_SERVER": f"http://127.0.0.1:{port}",
        "CADENZA_PORT": str(port),
        **extra,
    }


def _wait_ready(port: int, proc: subprocess.Popen[str], log_path: Path) -> None:
    import urllib.request

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"serve did not become ready in {READY_TIMEOUT_S:g} s")


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
    try:
        _wait_ready(port, proc, tmp / "serve.log")
    except BaseException:
        _stop(proc)
        raise
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


# The first request waits until a line arrives on stdin; later ones are answered at once. The
# server says "ready" when it listens and "request N" when a request arrived, so the test acts on
# what happened instead of sleeping and hoping.
HOLDING_SERVER = """
import asyncio, sys
from aiohttp import web

async def main(port):
    release, calls = asyncio.Event(), [0]

    async def slow(request):
        calls[0] += 1
        print(f"request {calls[0]}", flush=True)
        if calls[0] == 1:
            await release.wait()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    release.set()
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1])))
"""


def _holding_server(port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDING_SERVER, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert _said(proc) == "ready"
    return proc


def _said(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def _instance_status(tmp: Path) -> str:
    with sqlite3.connect(tmp / "c.db") as db:
        (status,) = db.execute("SELECT status FROM instances").fetchone()
    return str(status)


@pytest.mark.parametrize("grace", ["30", "0"])
def test_sigterm_finishes_or_releases_running_tasks(tmp_path: Path, grace: str) -> None:
    """With a grace period the running task finishes before exit; without one its lease is
    released at once, and the next server finishes the instance: nothing is lost."""
    port, http_port = free_port(), free_port()
    slow = _holding_server(http_port)
    extra = {"CADENZA_EGRESS_ALLOW_PRIVATE": "true", "CADENZA_SHUTDOWN_GRACE_S": grace}
    (tmp_path / "slow.yaml").write_text(SLOW.replace("PORT", str(http_port)))
    assert slow.stdin is not None
    try:
        proc = _serve(tmp_path, port, **extra)
        cli(tmp_path, port, "login", "--password-stdin", stdin=PASSWORD + "\n")
        assert cli(tmp_path, port, "apply", "slow.yaml").returncode == 0
        assert cli(tmp_path, port, "start", "slow").returncode == 0
        assert _said(slow) == "request 1"  # the http call is in flight, held by the server
        proc.send_signal(signal.SIGTERM)
        if grace != "0":
            slow.stdin.write("answer now\n")  # the held call ends within the grace period
            slow.stdin.flush()
        # a graceful stop exits 0 (uvicorn's re-raised SIGTERM: entrypoints/signals.py)
        assert proc.wait(EXIT_TIMEOUT_S) == 0
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
            assert _said(slow) == "request 2"  # the next server runs the call again
            deadline = time.monotonic() + EXIT_TIMEOUT_S
            while _instance_status(tmp_path) == "running" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _instance_status(tmp_path) == "completed"
            with sqlite3.connect(tmp_path / "c.db") as db:
                requeued = db.execute(
                    "SELECT data FROM events WHERE type = 'TaskRequeued'"
                ).fetchall()
            assert [json.loads(d)["charged"] for (d,) in requeued] == [False]  # not an expiry
        finally:
            _stop(again)
    finally:
        slow.terminate()
        slow.communicate()  # reaps it and closes its pipes
