"""Wheel smoke: the wheel `make wheel` builds, installed by the image's own install script
into a fresh virtualenv outside the checkout, serves the web console and runs an example over
the API, answers the image's HEALTHCHECK, then stops on SIGTERM having closed its store and
written only under its data directory.

The console must be built (`make ui`; `make test` does it before pytest): this test builds
the wheel only. pip may fetch the dependencies from the package index (its cache is used)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.deploy.dockerfile import ROOT, stages
from tests.net import free_port

BUILD_SCRIPT = "scripts/build_wheel.sh"
INSTALL_SCRIPT = "scripts/install_wheel.sh"
CONSOLE = ROOT / "src" / "cadenza" / "web" / "dist"
PASSWORD = "wheel-smoke-admin-password"
# upper bounds, not waits: a loaded machine (2 cores, other suites running) is slow
INSTALL_TIMEOUT_S = 600.0
READY_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    outside: Path  # a directory outside the checkout to run from


def _clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH (nor any other PYTHON*): the child must import the installed wheel,
    never this checkout's src/."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return {**keep, **extra}


def _script(args: list[str], cwd: Path, env: Mapping[str, str]) -> str:
    r = subprocess.run(
        ["bash", str(ROOT / args[0]), *args[1:]],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    assert r.returncode == 0, f"{args[0]} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    if not (CONSOLE / "index.html").is_file():
        pytest.fail(f"the web console is not built ({CONSOLE} has no index.html): run `make ui`")
    base = tmp_path_factory.mktemp("wheel-smoke")
    assert not base.is_relative_to(ROOT)
    env = _clean_env(PYTHON=sys.executable)
    out = _script([BUILD_SCRIPT, str(base / "dist")], base, env)
    wheel = Path(out.splitlines()[-1])
    assert wheel.parent == base / "dist"
    _script([INSTALL_SCRIPT, str(base / "venv"), str(wheel)], base, env)
    outside = base / "run"
    outside.mkdir()
    return Installed(wheel, base / "venv", outside)


def test_build_script_refuses_a_checkout_without_the_console(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "src" / "cadenza").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    script = tmp_path / BUILD_SCRIPT
    script.write_text((ROOT / BUILD_SCRIPT).read_text())
    r = subprocess.run(
        ["bash", str(script), str(tmp_path / "dist")],
        env=_clean_env(PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1
    assert "the web console is not built" in r.stderr
    assert "run 'make ui' first" in r.stderr
    assert list((tmp_path / "dist").iterdir()) == []


def test_wheel_holds_every_console_file_and_the_migrations(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    console = {
        f"cadenza/web/dist/{p.relative_to(CONSOLE).as_posix()}"
        for p in CONSOLE.rglob("*")
        if p.is_file()
    }
    assert {n for n in names if n.startswith("cadenza/web/")} == console
    migrations = ROOT / "src" / "cadenza" / "infrastructure" / "sql" / "migrations"
    versions = {
        f"cadenza/{p.relative_to(ROOT / 'src' / 'cadenza')}" for p in migrations.rglob("*.py")
    }
    assert versions <= names


def test_installed_cadenza_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    r = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import cadenza; print(cadenza.__file__)"],
        cwd=installed.outside,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = Path(r.stdout.strip())
    assert imported.is_relative_to(installed.venv / "lib")
    assert not imported.is_relative_to(ROOT)


class Api:
    """Just enough HTTP (stdlib) to sign in, publish, start and read an instance."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = ""

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, str, bytes]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers.get_content_type(), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get_content_type(), e.read()

    def json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, _, raw = self.request(method, path, body)
        assert status == expect, (method, path, status, raw[:500])
        return json.loads(raw)


def _healthcheck(installed: Installed, port: int) -> int:
    """The image's HEALTHCHECK command, run with the installed Python."""
    argv = stages()[-1].healthcheck()
    assert argv[0] == "python"
    r = subprocess.run(
        [str(installed.venv / "bin" / "python"), *argv[1:]],
        env=_clean_env(HEALTH_PORT=str(port)),
        capture_output=True,
        timeout=60,
        check=False,
    )
    return r.returncode


@pytest.fixture
def server(installed: Installed, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    (tmp_path / "home").mkdir()
    env = _clean_env(
        PATH=f"{installed.venv / 'bin'}:/usr/bin:/bin",
        HOME=str(tmp_path / "home"),
        PYTHONDONTWRITEBYTECODE="1",  # as in the image
        CADENZA_DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'cadenza.db'}",
        CADENZA_ADMIN_PASSWORD=PASSWORD,
        CADENZA_SHUTDOWN_GRACE_S="5",
    )
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen(
            ["cadenza", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=installed.outside,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if Api(port).request("GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "serve did not answer /health in time"
            time.sleep(0.1)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def test_installed_wheel_serves_console_runs_example_and_stops_cleanly(
    installed: Installed, server: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    proc, port = server
    venv_files = _files(installed.venv)
    # the server is the venv's Python running the venv's script, with no path into the checkout
    argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    assert argv[:3] == [bytes(installed.venv / "bin" / n) for n in ("python", "cadenza")] + [
        b"serve"
    ]
    environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith(b"PYTHONPATH=")]
    api = Api(port)

    status, kind, html = api.request("GET", "/")
    assert (status, kind) == (200, "text/html")
    assert b"<title>Cadenza</title>" in html
    script = re.search(rb'src="(/assets/index-[\w-]+\.js)"', html)
    assert script is not None, html
    status, kind, body = api.request("GET", script.group(1).decode())
    assert status == 200
    assert kind in ("text/javascript", "application/javascript")  # by the platform's mimetypes
    assert body == (CONSOLE / script.group(1).decode().lstrip("/")).read_bytes()
    # the API docs page and its Swagger UI come from the wheel too (no CDN)
    status, kind, html = api.request("GET", "/docs")
    assert (status, kind) == (200, "text/html")
    assert b'src="/docs/swagger-ui-bundle.js"' in html
    status, _, body = api.request("GET", "/docs/swagger-ui-bundle.js")
    assert status == 200
    assert body == (CONSOLE / "api-docs" / "swagger-ui-bundle.js").read_bytes()

    tokens = api.json("POST", "/api/v1/auth/login", {"username": "admin", "password": PASSWORD})
    api.token = tokens["access_token"]
    document = yaml.safe_load((ROOT / "examples" / "fanout.yaml").read_text())
    saved = api.json(
        "POST", "/api/v1/processes/definitions", {"document": document, "publish": True}, 201
    )
    assert (saved["process_id"], saved["version"]) == ("fanout-join", 1)
    inputs = {"ticket": "Error when saving the invoice", "tags": ["billing", "ui"]}
    started = api.json(
        "POST", "/api/v1/processes/instances", {"process_id": "fanout-join", "inputs": inputs}, 201
    )
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while (inst := api.json("GET", f"/api/v1/processes/instances/{started['id']}"))["status"] in (
        "pending",
        "running",
    ):
        assert time.monotonic() < deadline, inst
        time.sleep(0.1)
    assert inst["status"] == "completed", inst
    assert inst["outputs"] == {
        "label": "bug",
        "summary": "Error when saving the invoice -> engineering [BILLING-0, UI-1]",
    }

    assert _healthcheck(installed, port) == 0  # the image's HEALTHCHECK, against this server

    proc.send_signal(signal.SIGTERM)
    # SIGTERM is a stop request (docker stop, pod termination): a clean exit, status 0
    assert proc.wait(EXIT_TIMEOUT_S) == 0, (tmp_path / "serve.log").read_text()
    assert _healthcheck(installed, port) != 0
    # the store was closed, not abandoned: SQLite removes the -wal and -shm files when the
    # last connection closes. And nothing was written outside the data directory: not in the
    # venv (no byte code), not in the working directory (a read-only root filesystem will do)
    assert {p.name for p in (tmp_path / "data").iterdir()} == {"cadenza.db", "token-secret"}
    assert _files(installed.venv) == venv_files
    assert _files(installed.outside) == set()
