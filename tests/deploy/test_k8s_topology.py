"""The Kubernetes manifests' topology: network policies, autoscalers and budgets, the
Ingress, grace periods, the two apply phases, and what each overlay changes."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from tests.deploy.k8s_manifests import (
    K8S,
    ROLE_PORTS,
    ROLES,
    Obj,
    Rendered,
    container_port,
    containers,
    labels_match,
    pod_spec,
    render_all,
)

from cadenza.application.engine.loop import STOP_TIMEOUT_S

COMMIT_FLUSH_S = 5.0  # Engine.stop lets posted results commit this long (engine/loop.py)
UVICORN_EXTRA_S = 5.0  # uvicorn's timeout_graceful_shutdown is shutdown_grace_s + 5


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    return render_all(tmp_path_factory.mktemp("k8s"))


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
        egress = {role: _egress(policies[f"cadenza-{role}"]) for role in [*ROLES, "migrate"]}
        datastores = {3306, 5432, 6379, 9092, 9093}
        assert egress == {
            "api": {*datastores, "mcp-proxy:9103"},
            "worker": {*datastores, "mcp-proxy:9103", "public:443"},
            "agents": {*datastores, "mcp-proxy:9103", "public:443"},
            "mcp-proxy": {3306, 5432, "public:443"},
            "migrate": {3306, 5432},
        }


def _egress(policy: Obj) -> set[int | str]:
    """Where a policy lets its pods go: bare ports (any address), ``component:port`` for
    Cadenza's pods, ``public:port`` for the internet without the private ranges."""
    out: set[int | str] = set()
    for rule in policy.get("egress", []):
        for port in rule["ports"]:
            peers = rule.get("to")
            if peers is None:
                out.add(port["port"])
            for peer in peers or []:
                if "podSelector" in peer:
                    component = peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                    out.add(f"{component}:{port['port']}")
                else:
                    assert (
                        "10.0.0.0/8" in peer["ipBlock"]["except"]
                        or "fc00::/7" in peer["ipBlock"]["except"]
                    )
                    out.add(f"public:{port['port']}")
    return out


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
    syntax = subprocess.run(
        ["/bin/sh", "-n", str(K8S / "rollout.sh")], capture_output=True, check=False
    )
    assert syntax.returncode == 0, syntax.stderr
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
