"""The Kubernetes manifests (deploy/k8s): every overlay renders and is valid for the Kubernetes
API, follows the deployment's rules, and its commands, settings and probes are Cadenza's."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from tests.deploy.k8s_manifests import (
    K8S,
    KUBERNETES_VERSION,
    ROLES,
    TARGETS,
    Obj,
    Rendered,
    committed_files,
    container_port,
    containers,
    env_file,
    is_cadenza,
    labels_match,
    parse_cli,
    pod_spec,
    prepared_tree,
    render,
    run_make_secrets,
)

from cadenza.application.engine.loop import STOP_TIMEOUT_S
from cadenza.application.readiness import READINESS_TIMEOUT_S, ServiceRole
from cadenza.infrastructure.secrets_crypto import parse_keys
from cadenza.settings import Settings

ROLE_PORTS = {"api": 8080, "worker": 9101, "agents": 9102, "mcp-proxy": 9103}
COMMIT_FLUSH_S = 5.0  # Engine.stop lets posted results commit this long (engine/loop.py)
UVICORN_EXTRA_S = 5.0  # uvicorn's timeout_graceful_shutdown is shutdown_grace_s + 5
SETTINGS = frozenset(f"CADENZA_{name.upper()}" for name in Settings.model_fields)
SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY\b")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    tree = prepared_tree(tmp_path_factory.mktemp("k8s"))
    return {t: Rendered(t, render(tree, t)) for t in TARGETS}


def _all(rendered: dict[str, Rendered]) -> list[tuple[str, Obj]]:
    return [(r.target, o) for r in rendered.values() for o in r.objects]


def test_every_rendered_object_is_valid_for_the_kubernetes_api(
    rendered: dict[str, Rendered],
) -> None:
    for target, obj in _all(rendered):
        where = f"{target}: {obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{where}: {e.message} at {list(e.path)}")
    assert {t: len(r.objects) for t, r in rendered.items()} == {
        "base": 25,
        "overlays/dev": 34,
        "overlays/prod": 29,
    }


def test_strict_validation_refuses_an_unknown_field(rendered: dict[str, Rendered]) -> None:
    service = rendered["base"].named("Service", "cadenza-api")
    wrong = {**service, "spec": {**service["spec"], "prots": []}}
    with pytest.raises(kubernetes_validate.ValidationError, match="prots"):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSION, strict=True)


def test_every_container_runs_unprivileged(rendered: dict[str, Rendered]) -> None:
    for target, obj in _all(rendered):
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
    for target, obj in _all(rendered):
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
    for target, obj in _all(rendered):
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
    for target, obj in _all(rendered):
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


def test_the_network_is_denied_by_default_and_opened_per_role(
    rendered: dict[str, Rendered],
) -> None:
    for r in rendered.values():
        policies = {p["metadata"]["name"]: p["spec"] for p in r.of("NetworkPolicy")}
        assert policies["cadenza-default-deny"] == {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
        }
        for role in [*ROLES, "migrate"]:
            spec = policies[f"cadenza-{role}"]
            kind, name = ("Job", "cadenza-migrate") if role == "migrate" else ("Deployment", "")
            workload = r.named(kind, name or f"cadenza-{role}")
            template = workload["spec"]["template"]["metadata"]["labels"]
            assert labels_match(spec["podSelector"]["matchLabels"], template), role
            ports = {p["port"] for rule in spec.get("ingress", []) for p in rule["ports"]}
            assert ports <= {ROLE_PORTS.get(role)}, role
        sources = {
            role: [peer for rule in policies[f"cadenza-{role}"]["ingress"] for peer in rule["from"]]
            for role in ROLES
        }
        monitoring = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
        }
        ingress = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
        }
        assert sources["api"] == [ingress, monitoring]
        assert sources["worker"] == sources["agents"] == [monitoring]
        callers = [
            p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for p in sources["mcp-proxy"][:-1]
        ]
        assert callers == ["worker", "agents", "api"]
        assert sources["mcp-proxy"][-1] == monitoring


def test_autoscalers_and_disruption_budgets_select_the_deployments(
    rendered: dict[str, Rendered],
) -> None:
    for r in rendered.values():
        for hpa in r.of("HorizontalPodAutoscaler"):
            target = hpa["spec"]["scaleTargetRef"]
            assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
            assert "replicas" not in r.named("Deployment", target["name"])["spec"], (
                "the HPA owns them"
            )
        for pdb in r.of("PodDisruptionBudget"):
            selector = pdb["spec"]["selector"]["matchLabels"]
            matched = [
                d["metadata"]["name"]
                for d in r.of("Deployment")
                if labels_match(selector, d["spec"]["template"]["metadata"]["labels"])
            ]
            assert matched == [pdb["metadata"]["name"]], pdb["metadata"]["name"]
    prod, dev = rendered["overlays/prod"], rendered["overlays/dev"]
    bounds = {
        h["metadata"]["name"]: (h["spec"]["minReplicas"], h["spec"]["maxReplicas"])
        for h in prod.of("HorizontalPodAutoscaler")
    }
    assert bounds == {"cadenza-api": (3, 12), "cadenza-worker": (3, 20)}
    assert {d["metadata"]["name"]: d["spec"].get("replicas") for d in prod.of("Deployment")} == {
        "cadenza-api": None,
        "cadenza-worker": None,
        "cadenza-agents": 2,
        "cadenza-mcp-proxy": 2,
    }
    assert len(prod.of("PodDisruptionBudget")) == 4
    assert {
        d["spec"]["replicas"]
        for d in dev.of("Deployment")
        if d["metadata"]["name"].startswith("cadenza-")
    } == {1}
    assert dev.of("HorizontalPodAutoscaler") == dev.of("PodDisruptionBudget") == []


def test_the_ingress_reaches_the_api_port_and_its_hosts_are_allowed(
    rendered: dict[str, Rendered],
) -> None:
    for r in rendered.values():
        (ingress,) = r.of("Ingress")
        notes = ingress["metadata"]["annotations"]
        assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
        assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
        (rule,) = ingress["spec"]["rules"]
        assert ingress["spec"]["tls"] == [{"hosts": [rule["host"]], "secretName": "cadenza-tls"}]
        (path,) = rule["http"]["paths"]
        backend = path["backend"]["service"]
        service = r.named("Service", backend["name"])
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == backend["port"]["name"]]
        (api,) = pod_spec(r.role("api"))["containers"]
        assert service["spec"]["selector"] == r.role("api")["spec"]["selector"]["matchLabels"]
        assert container_port(api, port["targetPort"]) == 8080
        hosts = next(e["value"] for e in api["env"] if e["name"] == "CADENZA_ALLOWED_HOSTS")
        assert rule["host"] in yaml.safe_load(hosts)
        assert "$(POD_IP)" in yaml.safe_load(hosts)


def test_termination_grace_covers_the_graceful_stop(rendered: dict[str, Rendered]) -> None:
    for r in rendered.values():
        grace = float(r.config()["CADENZA_SHUTDOWN_GRACE_S"])
        engine_stop = COMMIT_FLUSH_S + STOP_TIMEOUT_S
        stop = {
            "api": grace + UVICORN_EXTRA_S + engine_stop,  # streams close, then the runtime
            "worker": grace + engine_stop,  # running tasks get the grace
            "agents": engine_stop,
            "mcp-proxy": grace + UVICORN_EXTRA_S,
        }
        for role, needed in stop.items():
            spec = pod_spec(r.role(role))
            pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
            assert 0 < pre_stop <= 10
            assert spec["terminationGracePeriodSeconds"] >= pre_stop + needed, role


def _select(objects: list[Obj], selector: str) -> set[tuple[str, str]]:
    """What ``kubectl apply -l SELECTOR`` applies: ``key=value`` or ``key!=value`` (an
    object without the label matches ``!=``)."""
    parsed = re.fullmatch(r"([^!=]+)(!?=)(.*)", selector)
    assert parsed is not None, selector
    key, op, value = parsed.groups()
    return {
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if (o["metadata"].get("labels", {}).get(key) == value) == (op == "=")
    }


def test_the_migration_job_runs_in_a_phase_before_the_rest(rendered: dict[str, Rendered]) -> None:
    # the selectors of deploy/k8s/rollout.sh
    rollout = (K8S / "rollout.sh").read_text()
    assert "-l cadenza.dev/pre-rollout=true" in rollout
    assert "-l 'app.kubernetes.io/component!=migration'" in rollout
    for r in rendered.values():
        first = _select(r.objects, "cadenza.dev/pre-rollout=true")
        then = _select(r.objects, "app.kubernetes.io/component!=migration")
        job = r.named("Job", "cadenza-migrate")
        (c,) = pod_spec(job)["containers"]
        assert c["args"] == ["db", "upgrade"]
        refs = {
            (kind, next(iter(s.values()))["name"])
            for kind, s in zip(("ConfigMap", "Secret"), c["envFrom"], strict=True)
        }
        made_here = {(o["kind"], o["metadata"]["name"]) for o in r.objects}
        expected = {
            ("Job", "cadenza-migrate"),
            ("ServiceAccount", "cadenza"),
            ("NetworkPolicy", "cadenza-migrate"),
            ("NetworkPolicy", "cadenza-default-deny"),
            ("NetworkPolicy", "cadenza-allow-dns"),
            *(refs & made_here),  # prod's Secret is made out of band, before
            *{n for n in made_here if n[0] == "Namespace"},
        }
        assert first == expected, r.target
        # a Job's pod template is immutable: the second phase leaves it (and its policy) alone
        assert made_here - then == {
            ("Job", "cadenza-migrate"),
            ("NetworkPolicy", "cadenza-migrate"),
        }
    assert rendered["overlays/prod"].of("Secret") == []  # made out of band, never committed


def test_prod_pins_the_image_and_spreads_the_replicas(rendered: dict[str, Rendered]) -> None:
    prod = rendered["overlays/prod"]
    for obj in prod.workloads():
        for c in containers(obj):
            assert re.fullmatch(
                r"ghcr\.io/cadenza-dev/cadenza(:\d+\.\d+\.\d+)?(@sha256:[0-9a-f]{64})?", c["image"]
            )
            assert not c["image"].endswith(":latest")
    for role in ROLES:
        spread = pod_spec(prod.role(role))["topologySpreadConstraints"]
        assert [s["topologyKey"] for s in spread] == [
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        ]
    agents = pod_spec(prod.role("agents"))["affinity"]["podAntiAffinity"]
    assert (
        agents["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"]
        == "kubernetes.io/hostname"
    )
    for r in rendered.values():
        for role in ROLES:
            notes = r.role(role)["spec"]["template"]["metadata"]["annotations"]
            assert notes == {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(ROLE_PORTS[role]),
                "prometheus.io/path": "/metrics",
            }


def _placeholder_only(value: str) -> bool:
    """Empty, or a URL whose password is a <PLACEHOLDER>."""
    if not value:
        return True
    password = urlsplit(value).password
    return "://" in value and (password is None or re.fullmatch(r"<[A-Z_]+>", password) is not None)


def test_committed_files_hold_no_secret_value() -> None:
    checked = 0
    for path in committed_files():
        assert path.name not in ("secrets.env", "deps.env"), f"{path} must not be committed"
        if path.name.endswith(".env.example"):
            for key, value in env_file(path).items():
                assert _placeholder_only(value), (path, key)
                assert not (SECRET_WORDS.search(key) and value), (path, key)
                checked += 1
        if path.suffix not in (".yaml", ".yml"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "Secret":
                values = {**doc.get("data", {}), **doc.get("stringData", {})}
                assert set(values.values()) <= {""}, path
                checked += len(values)
            if doc.get("kind") == "ConfigMap":
                for key, value in doc.get("data", {}).items():
                    assert not SECRET_WORDS.search(key), (path, key)
                    assert "://" not in value or urlsplit(value).password is None, (path, key)
            for generator in (
                doc.get("secretGenerator", []) if doc.get("kind") == "Kustomization" else []
            ):
                assert "literals" not in generator, path
                assert "files" not in generator, path
                for env in generator["envs"]:
                    assert _ignored(path.parent / env), f"{path}: {env} must be git-ignored"
                    checked += 1
    assert checked >= 20


def _ignored(path: Path) -> bool:
    done = subprocess.run(
        ["git", "check-ignore", "-q", str(path)], cwd=K8S, check=False, timeout=30
    )
    return done.returncode == 0


def test_make_secrets_writes_fresh_values_for_every_key(tmp_path: Path) -> None:
    made: list[dict[str, str]] = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        done = run_make_secrets(tmp_path / name)
        assert done.returncode == 0, done.stderr
        assert oct((tmp_path / name / "secrets.env").stat().st_mode & 0o777) == "0o600"
        made.append(
            {**env_file(tmp_path / name / "secrets.env"), **env_file(tmp_path / name / "deps.env")}
        )
    dev = K8S / "overlays" / "dev"
    keys = {**env_file(dev / "secrets.env.example"), **env_file(dev / "deps.env.example")}
    for values in made:
        assert set(values) == set(keys)
        for key in ("CADENZA_TOKEN_SECRET", "CADENZA_METRICS_TOKEN", "CADENZA_MCP_PROXY_TOKEN"):
            assert len(values[key]) >= 32, key
        assert len(values["CADENZA_ADMIN_PASSWORD"]) >= 12
        assert len(parse_keys(values["CADENZA_SECRETS_KEY"], "CADENZA_SECRETS_KEY")) == 1
        assert urlsplit(values["CADENZA_DATABASE_URL"]).password == values["MYSQL_PASSWORD"]
        assert urlsplit(values["CADENZA_REDIS_URL"]).password == values["REDIS_PASSWORD"]
    secret = {k for k, v in made[0].items() if v and "://" not in v}
    assert all(made[0][k] != made[1][k] for k in secret), "every run draws new values"
    again = run_make_secrets(tmp_path / "one")
    assert again.returncode == 1
    assert "exists" in again.stderr
