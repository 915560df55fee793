"""Every probe of the Kubernetes manifests answers 200 from the process its Deployment runs:
each role is started with the Deployment's own arguments and environment (the ConfigMap, the
container's env with ``$(VAR)`` expanded, the pod IP as 127.0.0.1), only the database (a SQLite
file), the secrets and the port (a free one) set by the test; the migration Job's command runs
first. A SIGTERM then stops each within its terminationGracePeriodSeconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.deploy.k8s_manifests import (
    ROLES,
    Obj,
    Rendered,
    container_env,
    container_port,
    pod_spec,
    prepared_tree,
    render,
)
from tests.net import free_port

from cadenza.infrastructure.secrets_crypto import new_key

START_TIMEOUT_S = 120.0  # an upper bound: ~40 s to import and start at load 8 on 2 cores
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
POD_IP = "127.0.0.1"


@dataclass
class Process:
    role: str
    proc: subprocess.Popen[bytes]
    log: Path
    ports: dict[int, int]  # the manifest's port -> the port this process listens on
    container: Obj
    grace_s: int

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _secrets(tmp: Path) -> dict[str, str]:
    """The Secret cadenza-secrets, as the test makes it (keys: base/secret.example.yaml)."""
    return {
        "CADENZA_DATABASE_URL": f"sqlite:///{tmp / 'cadenza.db'}",
        "CADENZA_BUS_URL": "memory://",
        "CADENZA_REDIS_URL": "",
        "CADENZA_CACHE_URL": "",
        "CADENZA_ADMIN_PASSWORD": "probe-admin-password",
        "CADENZA_TOKEN_SECRET": "t" * 40,
        "CADENZA_SECRETS_KEY": new_key(),
        "CADENZA_METRICS_TOKEN": "m" * 40,
        "CADENZA_MCP_PROXY_TOKEN": "p" * 40,
    }


def _environment(tmp: Path, role: str, container: Obj, config: dict[str, str]) -> dict[str, str]:
    fields = {"status.podIP": POD_IP, "metadata.name": f"cadenza-{role}-probe"}
    env = container_env(container, config, _secrets(tmp), fields)
    inherited = {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}
    return {
        **inherited,
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        **env,
        "CADENZA_PASSWORD_HASH_N": str(2**10),  # the admin is made at start: keep it cheap
    }


def _local_args(args: list[str], ports: dict[int, int]) -> list[str]:
    """The container's args with --host 127.0.0.1 and each --port moved to a free port."""
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        if arg == "--host":
            out[i + 1] = POD_IP
        elif arg == "--port":
            out[i + 1] = str(ports[int(out[i + 1])])
    return out


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    tree = prepared_tree(tmp_path_factory.mktemp("k8s"))
    return Rendered("overlays/prod", render(tree, "overlays/prod"))


@pytest.fixture(scope="module")
def processes(prod: Rendered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Process]]:
    tmp = tmp_path_factory.mktemp("probes")
    config = dict(prod.config())
    ports = {p: free_port() for p in (8080, 9101, 9102, 9103)}
    config["CADENZA_MCP_PROXY_URL"] = config["CADENZA_MCP_PROXY_URL"].replace(
        "cadenza-mcp-proxy:9103", f"{POD_IP}:{ports[9103]}"
    )
    (job,) = pod_spec(prod.named("Job", "cadenza-migrate"))["containers"]
    migrate = subprocess.run(
        [sys.executable, "-m", "cadenza", *job["args"]],
        env=_environment(tmp, "migrate", job, config),
        cwd=tmp,
        capture_output=True,
        text=True,
        check=False,
        timeout=START_TIMEOUT_S,
    )
    assert migrate.returncode == 0, migrate.stderr
    started: list[Process] = []
    try:
        for role in ROLES:
            spec = pod_spec(prod.role(role))
            (c,) = spec["containers"]
            log = tmp / f"{role}.log"
            with log.open("wb") as out:  # the child keeps its own descriptor
                proc = subprocess.Popen(
                    [sys.executable, "-m", "cadenza", *_local_args(c["args"], ports)],
                    env=_environment(tmp, role, c, config),
                    cwd=tmp,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            grace = spec["terminationGracePeriodSeconds"]
            started.append(Process(role, proc, log, ports, c, grace))
        yield started
    finally:
        for p in started:
            if p.proc.poll() is None:
                p.proc.kill()
            p.proc.wait(30)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            status: int = answer.status
            return status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0  # not listening yet


def _first_200(p: Process, path: str, port: int) -> int:
    """Ask like the kubelet (GET podIP:port/path) until the answer is 200 or the deadline;
    the last status."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        status = _get(f"http://{POD_IP}:{port}{path}")
        if status == 200 or time.monotonic() > deadline:
            return status
        assert p.proc.poll() is None, f"{p.role} exited:\n{p.output()}"
        time.sleep(0.05)


def test_every_probe_answers_200_and_sigterm_stops_each_role_within_its_grace(
    processes: list[Process],
) -> None:
    answers = {}
    for p in processes:
        for probe in PROBES:
            get = p.container[probe]["httpGet"]
            port = p.ports[container_port(p.container, get["port"])]
            answers[(p.role, probe, get["path"])] = _first_200(p, get["path"], port)
    assert answers == {
        (role, probe, path): 200
        for role in ROLES
        for probe, path in zip(PROBES, ("/health", "/health", "/health/readiness"), strict=True)
    }
    # then the pods are deleted: the kubelet sends SIGTERM after the preStop sleep, SIGKILL at
    # the grace period's end
    stopped: dict[str, int | None] = {}
    for p in processes:
        p.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    for p in processes:
        pre_stop = p.container["lifecycle"]["preStop"]["sleep"]["seconds"]
        left = signalled + p.grace_s - pre_stop - time.monotonic()
        try:
            stopped[p.role] = p.proc.wait(max(left, 0.001))
        except subprocess.TimeoutExpired:
            stopped[p.role] = None
    # a graceful stop is a clean exit on every role (bootstrap/stop_on_term.py for uvicorn's)
    assert stopped == {"api": 0, "worker": 0, "agents": 0, "mcp-proxy": 0}, "\n".join(
        p.output()[-2000:] for p in processes
    )
