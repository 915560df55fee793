"""The Kubernetes manifests (deploy/k8s): every overlay renders and is valid for the Kubernetes
API, follows the deployment's rules, and its commands, settings and probes are Cadenza's."""

from __future__ import annotations

import re

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from tests.deploy.k8s_manifests import (
    K8S,
    KUBERNETES_VERSION,
    ROLE_PORTS,
    ROLES,
    Rendered,
    all_objects,
    container_port,
    containers,
    env_file,
    is_cadenza,
    parse_cli,
    pod_spec,
    render_all,
)

from cadenza.application.readiness import READINESS_TIMEOUT_S, ServiceRole
from cadenza.settings import Settings

SETTINGS = frozenset(f"CADENZA_{name.upper()}" for name in Settings.model_fields)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    return render_all(tmp_path_factory.mktemp("k8s"))


def test_every_rendered_object_is_valid_for_the_kubernetes_api(
    rendered: dict[str, Rendered],
) -> None:
    for target, obj in all_objects(rendered):
        where = f"{target}: {obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{where}: {e.message} at {list(e.path)}")
    # ours, that is, without the monitoring kustomization's (the overlays include it)
    ours = {
        t: [
            o
            for o in r.objects
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "monitoring"
        ]
        for t, r in rendered.items()
    }
    assert {t: len(objects) for t, objects in ours.items()} == {
        "base": 25,  # 4 roles x (Deployment, Service, NetworkPolicy), 2 HPAs, 4 PDBs, ConfigMap,
        # ServiceAccount, Job + its policy, default deny, DNS, Ingress
        "overlays/dev": 31,  # - HPAs, PDBs; + Namespace, 2 Secrets, MySQL, Redis, Kafka (x2 +
        # a policy each)
        "overlays/prod": 26,  # + Namespace
    }
    for overlay in ("overlays/dev", "overlays/prod"):
        assert rendered[overlay].objects != ours[overlay], f"{overlay} includes ../../monitoring"


def test_strict_validation_refuses_an_unknown_field(rendered: dict[str, Rendered]) -> None:
    service = rendered["base"].named("Service", "cadenza-api")
    wrong = {**service, "spec": {**service["spec"], "prots": []}}
    with pytest.raises(kubernetes_validate.ValidationError, match="prots"):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSION, strict=True)


def test_every_container_runs_unprivileged(rendered: dict[str, Rendered]) -> None:
    for target, obj in all_objects(rendered):
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        spec = pod_spec(obj)
        assert spec["automountServiceAccountToken"] is False, obj["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in containers(obj):
            sc = c["securityContext"]
            where = f"{target}: {obj['metadata']['name']}/{c['name']}"
            assert sc["runAsNonRoot"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            if is_cadenza(c):  # the image runs as uid 10001 and writes only /tmp
                assert sc["runAsUser"] == 10001, where
                assert sc["readOnlyRootFilesystem"] is True, where
                mounts = {m["mountPath"] for m in c["volumeMounts"]}
                assert mounts == {"/tmp"}, where
                assert spec["serviceAccountName"] == "cadenza", where


def test_every_container_has_requests_and_limits(rendered: dict[str, Rendered]) -> None:
    for target, obj in all_objects(rendered):
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            for c in containers(obj):
                res = c["resources"]
                for part in ("requests", "limits"):
                    assert set(res[part]) == {"cpu", "memory"}, f"{target}: {c['name']} {part}"


def test_every_role_probes_health_and_readiness_on_its_own_port(
    rendered: dict[str, Rendered],
) -> None:
    for r in rendered.values():
        for role in ROLES:
            (c,) = pod_spec(r.role(role))["containers"]
            assert container_port(c, c["ports"][0]["containerPort"]) == ROLE_PORTS[role]
            paths = {}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                get = c[probe]["httpGet"]
                assert container_port(c, get["port"]) == ROLE_PORTS[role], (role, probe)
                paths[probe] = get["path"]
            assert paths == {
                "startupProbe": "/health",
                "livenessProbe": "/health",
                "readinessProbe": "/health/readiness",
            }
            # the readiness check's database ping may take READINESS_TIMEOUT_S to say so
            assert c["readinessProbe"]["timeoutSeconds"] > READINESS_TIMEOUT_S


def test_every_command_is_a_cadenza_command_with_real_options(
    rendered: dict[str, Rendered],
) -> None:
    commands = set()
    for target, obj in all_objects(rendered):
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        for c in containers(obj):
            if not is_cadenza(c):
                continue
            assert "command" not in c, "the image's ENTRYPOINT is cadenza: args only"
            path, params = parse_cli(c["args"])
            commands.add(" ".join(path))
            if obj["kind"] == "Deployment":
                assert params["host"] == "0.0.0.0", (target, c["args"])
                assert params["port"] == container_port(c, params["port"]), (target, c["args"])
    assert commands == {"serve", "worker", "agents", "mcp-proxy", "db upgrade"}
    for r in rendered.values():
        (api,) = pod_spec(r.role("api"))["containers"]
        assert ServiceRole(parse_cli(api["args"])[1]["role"]) is ServiceRole.API


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["worker", "--hots", "0.0.0.0"], "No such option: --hots"),
        (["worker", "--port", "99999"], "less than or equal to 65535"),
        (["workers"], "no command 'workers'"),
    ],
)
def test_the_command_check_refuses_what_cadenza_would(args: list[str], error: str) -> None:
    with pytest.raises(Exception, match=error):
        parse_cli(args)


def test_every_cadenza_variable_is_a_setting(rendered: dict[str, Rendered]) -> None:
    names: set[str] = set()
    for r in rendered.values():
        names |= set(r.config())
        for obj in r.workloads():
            names |= {e["name"] for c in containers(obj) for e in c.get("env", [])}
        for secret in r.of("Secret"):
            names |= set(secret["data"])
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    names |= set(example["stringData"])
    names |= set(env_file(K8S / "overlays" / "dev" / "secrets.env.example"))
    cadenza = {n for n in names if n.startswith("CADENZA_")}
    assert cadenza - SETTINGS == set()
    assert {"CADENZA_DATABASE_URL", "CADENZA_SHUTDOWN_GRACE_S", "CADENZA_ALLOWED_HOSTS"} <= cadenza


def test_env_references_name_variables_defined_before_them(rendered: dict[str, Rendered]) -> None:
    # Kubernetes expands $(VAR) only for variables defined earlier (envFrom, then env in order);
    # a strategic-merge patch puts its entries first, so an overlay can break the order
    for target, obj in all_objects(rendered):
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        for c in containers(obj):
            defined = {"*envFrom*"} if c.get("envFrom") else set()
            for item in c.get("env", []):
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", item.get("value", "")):
                    assert ref in defined, f"{target}: {c['name']}: {item['name']} uses $({ref})"
                defined.add(item["name"])
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(c.get("args", []))):
                assert ref in defined, f"{target}: {c['name']}: args use $({ref})"
