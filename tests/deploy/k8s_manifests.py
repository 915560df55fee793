"""Rendering and reading the Kubernetes manifests of deploy/k8s for tests/deploy/test_k8s.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import typer.main
import yaml
from typer.core import TyperCommand, TyperGroup

from cadenza.entrypoints.cli import app

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
TARGETS = ("base", "overlays/dev", "overlays/prod")
KUBERNETES_VERSION = "1.31"  # the oldest we support: lifecycle.preStop.sleep is on from 1.30
IMAGE = "ghcr.io/cadenza-dev/cadenza"
ROLES = ("api", "worker", "agents", "mcp-proxy")
ROLE_PORTS = {"api": 8080, "worker": 9101, "agents": 9102, "mcp-proxy": 9103}
RENDER_TIMEOUT_S = 120.0

Obj = dict[str, Any]


def kubectl() -> str:
    found = shutil.which("kubectl") or (
        "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None
    )
    if found is None:
        pytest.fail(
            "kubectl is not installed: `kubectl kustomize` renders the manifests (apt/snap kubectl)"
        )
    return found


def prepared_tree(tmp: Path) -> Path:
    """A copy of deploy/k8s whose dev overlay has its untracked env files, made by its own
    make-secrets.sh (the committed tree renders only with them)."""
    if not (K8S / "monitoring" / "kustomization.yaml").exists():
        pytest.fail("deploy/k8s/monitoring/kustomization.yaml is missing (the overlays include it)")
    tree = tmp / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets.env", "deps.env"))
    run_make_secrets(tree / "overlays" / "dev")
    return tree


def run_make_secrets(target: Path) -> subprocess.CompletedProcess[str]:
    script = K8S / "overlays" / "dev" / "make-secrets.sh"
    return subprocess.run(
        ["/bin/sh", str(script), str(target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def render(tree: Path, target: str) -> list[Obj]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(tree / target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=RENDER_TIMEOUT_S,
    )
    assert done.returncode == 0, f"kubectl kustomize {target}:\n{done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@dataclass(frozen=True)
class Rendered:
    target: str
    objects: list[Obj]

    def of(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> Obj:
        found = [o for o in self.of(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.target}: {kind}/{name}: {len(found)} found"
        return found[0]

    def workloads(self) -> list[Obj]:
        kinds = ("Deployment", "StatefulSet", "Job")
        return [o for o in self.objects if o["kind"] in kinds]

    def config(self) -> dict[str, str]:
        return cast(dict[str, str], self.named("ConfigMap", "cadenza-config")["data"])

    def role(self, role: str) -> Obj:
        """The Deployment of ``role``."""
        return self.named("Deployment", f"cadenza-{role}")


def render_all(tmp: Path) -> dict[str, Rendered]:
    tree = prepared_tree(tmp)
    return {t: Rendered(t, render(tree, t)) for t in TARGETS}


def all_objects(rendered: dict[str, Rendered]) -> list[tuple[str, Obj]]:
    return [(r.target, o) for r in rendered.values() for o in r.objects]


def pod_spec(workload: Obj) -> Obj:
    return cast(Obj, workload["spec"]["template"]["spec"])


def containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def is_cadenza(container: Obj) -> bool:
    return str(container["image"]).startswith(IMAGE)


def container_port(container: Obj, port: int | str) -> int:
    """A probe's or Service's port (a number or a port name) as the container's number."""
    for p in container.get("ports", []):
        if port in (p["containerPort"], p.get("name")):
            return int(p["containerPort"])
    raise AssertionError(f"container {container['name']} has no port {port!r}")


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_env(
    container: Obj, config: Mapping[str, str], secret: Mapping[str, str], fields: Mapping[str, str]
) -> dict[str, str]:
    """The environment Kubernetes gives ``container``: envFrom first, then env in order, with
    ``$(VAR)`` references to variables defined before expanded (unknown ones kept as is)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config if "configMapRef" in source else secret)
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = _REF.sub(lambda m: env.get(m[1], m[0]), item["value"])
        else:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def leaf_command(args: list[str]) -> tuple[list[str], TyperCommand, list[str]]:
    """The CLI command ``args`` name (descending through groups), and the rest of ``args``."""
    command = typer.main.get_command(app)
    path: list[str] = []
    rest = list(args)
    while isinstance(command, TyperGroup):
        assert rest, f"{args}: {' '.join(path) or 'cadenza'} needs a subcommand"
        sub = command.commands.get(rest[0])
        assert sub is not None, f"{args}: no command {rest[0]!r} (have {sorted(command.commands)})"
        path.append(rest.pop(0))
        command = sub
    assert isinstance(command, TyperCommand), args
    return path, command, rest


def parse_cli(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Parse ``args`` the way ``cadenza`` would (unknown options and bad values raise), without
    running anything: the command path and its parameters."""
    path, command, rest = leaf_command(args)
    with command.make_context(" ".join(["cadenza", *path]), rest) as ctx:
        return path, dict(ctx.params)


def committed_files() -> Iterator[Path]:
    """Files under deploy/k8s that are or would be committed (tracked, or untracked and not
    ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "deploy/k8s"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    for name in out.split("\0"):
        if name:
            yield ROOT / name


def env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs
