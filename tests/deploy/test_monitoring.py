"""The monitoring artifacts (deploy/k8s/monitoring): Prometheus configs, rules and their unit
tests pass promtool; the dashboards are well formed and what their generator writes; every
metric a dashboard or a rule queries is exposed by a running Cadenza process of some role."""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.deploy.promql_names import (
    SYNTHETIC,
    exposed_names,
    metric_names,
    substitute,
    template_expr,
)
from tests.net import free_port, wait_listening

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "k8s" / "monitoring"
PROMETHEUS = MONITORING / "prometheus"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
RULES = PROMETHEUS / "rules" / "cadenza.rules.yml"
RULE_TESTS = PROMETHEUS / "tests" / "cadenza.rules.test.yml"
DOCS = ROOT / "docs" / "observability.md"
COMPOSE_PROMETHEUS = ROOT / "deploy" / "compose" / "prometheus" / "prometheus.yml"
PROMTOOL = "/usr/bin/promtool"
KUBECTL = "/usr/bin/kubectl"
CONFIGS = {  # each Prometheus configuration, and where it reads the metrics token
    "kubernetes": (PROMETHEUS / "prometheus.yml", "/etc/prometheus/secrets/metrics-token"),
    "compose": (COMPOSE_PROMETHEUS, "/run/secrets/metrics-token"),  # the Compose secret
}
METRICS_TOKEN = "metrics-token-" + "m" * 32
START_TIMEOUT_S = 60.0  # to import, migrate and listen, on a busy machine
STOP_TIMEOUT_S = 30.0


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    tool = args[0]
    if not Path(tool).exists():
        pytest.fail(f"{tool} is missing: `make system-deps` installs it (Debian's package)")
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and template variable."""
    out: list[tuple[str, str]] = []
    for name, board in dashboards().items():
        for p in panels(board):
            out += [(f"{name}: {p['title']}", t["expr"]) for t in p.get("targets", [])]
        for v in board["templating"]["list"]:
            if v["type"] == "query":
                out.append((f"{name}: ${v['name']}", template_expr(v["query"]["query"])))
    return out


def rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(RULES)["groups"] for r in g["rules"]]


# ---- promtool --------------------------------------------------------------------------
def kubernetes_sd_stand_in(config: dict[str, Any]) -> dict[str, Any]:
    """Debian's promtool is built without Kubernetes service discovery: each
    ``kubernetes_sd_configs`` becomes a ``file_sd_configs`` after its own checks here."""
    for job in config["scrape_configs"]:
        sds = job.pop("kubernetes_sd_configs", None)
        if sds is None:
            continue
        assert [sd["role"] for sd in sds] == ["pod"], job["job_name"]
        metas = {
            label
            for step in job["relabel_configs"]
            for label in step.get("source_labels", [])
            if label.startswith("__meta_")
        }
        assert metas, job["job_name"]
        assert all(
            m.startswith(("__meta_kubernetes_pod_", "__meta_kubernetes_namespace")) for m in metas
        )
        job["file_sd_configs"] = [{"files": ["targets.json"]}]
    return config


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_prometheus_config_passes_promtool_check_config(name: str, tmp_path: Path) -> None:
    path, token_file = CONFIGS[name]
    config = load_yaml(path)
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = config["scrape_configs"]
    cadenza = [j for j in jobs if j["job_name"].startswith("cadenza")]
    assert cadenza
    for job in cadenza:  # the metrics token, from a mounted file
        assert job["authorization"] == {"type": "Bearer", "credentials_file": token_file}
    checked = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS / "rules", checked / "rules")
    (checked / "metrics-token").write_text(METRICS_TOKEN)
    text = path.read_text().replace(token_file, str(checked / "metrics-token"))
    (checked / "prometheus.yml").write_text(text)
    result = run(PROMTOOL, "check", "config", "prometheus.yml", cwd=checked)
    if "field kubernetes_sd_configs not found" in result.stderr + result.stdout:
        stand_in = kubernetes_sd_stand_in(yaml.safe_load(text))
        (checked / "prometheus.yml").write_text(yaml.safe_dump(stand_in))
        result = run(PROMTOOL, "check", "config", "prometheus.yml", cwd=checked)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


def test_compose_config_scrapes_every_role_on_its_port() -> None:
    config = load_yaml(COMPOSE_PROMETHEUS)
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["cadenza-api"]["static_configs"][0]["targets"] == [
        "cadenza-api-1:8080",
        "cadenza-api-2:8080",
    ]
    assert jobs["cadenza-worker"]["dns_sd_configs"][0]["port"] == 9101
    assert jobs["cadenza-agents"]["dns_sd_configs"][0]["port"] == 9102
    assert jobs["cadenza-mcp-proxy"]["static_configs"][0]["targets"] == ["cadenza-mcp-proxy:9103"]


def test_rules_pass_promtool_check_rules() -> None:
    result = run(PROMTOOL, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass_promtool_test_rules() -> None:
    result = run(PROMTOOL, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_documented_and_unit_tested_firing_and_silent() -> None:
    tests = load_yaml(RULE_TESTS)["tests"]
    checks = [c for t in tests for c in t.get("alert_rule_test", [])]
    docs = DOCS.read_text()
    alerts = [r for r in rules() if "alert" in r]
    assert len(alerts) == 11
    for rule in alerts:
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["for"], name
        assert {"summary", "description", "runbook"} <= rule["annotations"].keys(), name
        assert rule["annotations"]["runbook"] == f"docs/observability.md#{name.lower()}"
        assert re.search(rf"^#+ {name}$", docs, re.MULTILINE), f"no runbook for {name}"
        mine = [c for c in checks if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name} is never shown firing"
        assert any(not c.get("exp_alerts") for c in mine), f"{name} is never shown silent"


# ---- dashboards ------------------------------------------------------------------------
def test_dashboards_are_what_their_generator_writes() -> None:
    generator = runpy.run_path(str(MONITORING / "grafana" / "generate_dashboards.py"))
    built = generator["build"]()
    assert sorted(built) == sorted(dashboards())
    for name, board in built.items():
        assert (DASHBOARDS / name).read_text() == generator["render"](board), name


def test_every_panel_queries_the_provisioned_prometheus_and_ids_are_unique() -> None:
    uids = set()
    for name, board in dashboards().items():
        assert board["schemaVersion"] == 39, name
        uids.add(board["uid"])
        assert [v["name"] for v in board["templating"]["list"]] == ["job", "instance"]
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), name
        for p in panels(board):
            if p["type"] == "row":
                continue
            assert p["targets"], f"{name}: {p['title']} has no query"
            for t in p["targets"]:
                assert t["datasource"] == {"type": "prometheus", "uid": "prometheus"}
                assert t["expr"].strip()
    assert len(uids) == len(dashboards()) == 3


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule (Grafana's variables substituted)."""
    queries = [
        {"record": f"q:{i}", "expr": substitute(q).replace("$job", ".*").replace("$instance", ".*")}
        for i, (_, q) in enumerate(dashboard_queries())
    ]
    (tmp_path / "queries.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": queries}]})
    )
    result = run(PROMTOOL, "check", "rules", "queries.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, node_type) (rate(x_seconds_bucket{job=~"$job", '
        'status=~"5.."}[$__rate_interval]))) / on () group_left sum without (a) (y_total offset 5m)'
        ' > bool 1e3 or vector(0) and label_replace(z, "class", "${1}xx", "status", "(.)..")'
    )
    assert metric_names(expr) == {"x_seconds_bucket", "y_total", "z"}
    assert metric_names("job:http_errors:ratio_rate5m > 0.05") == {"job:http_errors:ratio_rate5m"}
    assert template_expr('label_values(up{job=~"cadenza-.*"}, job)') == 'up{job=~"cadenza-.*"}'


def test_the_kustomization_generates_the_monitoring_config_maps() -> None:
    result = run(KUBECTL, "kustomize", str(MONITORING))
    assert result.returncode == 0, result.stderr
    maps = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.stdout)}
    assert sorted(maps) == [
        "cadenza-grafana-dashboards",
        "cadenza-prometheus-config",
        "cadenza-prometheus-rules",
    ]
    assert all(m["kind"] == "ConfigMap" for m in maps.values())
    boards = maps["cadenza-grafana-dashboards"]
    assert boards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert sorted(boards["data"]) == sorted(dashboards())
    config = maps["cadenza-prometheus-config"]["data"]
    assert config == {"prometheus.yml": (PROMETHEUS / "prometheus.yml").read_text()}
    assert maps["cadenza-prometheus-rules"]["data"] == {RULES.name: RULES.read_text()}


# ---- every queried metric is exposed ---------------------------------------------------
def scrape(port: int, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def expositions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """{role: its /metrics} of ``serve --role all``, ``worker``, ``agents`` and ``mcp-proxy``
    on one SQLite database, scraped with the metrics token."""
    tmp = tmp_path_factory.mktemp("roles")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
    env |= {
        "CADENZA_DATABASE_URL": f"sqlite:///{tmp / 'cadenza.db'}",
        "CADENZA_METRICS_TOKEN": METRICS_TOKEN,
        "CADENZA_ADMIN_PASSWORD": "admin-password-" + "a" * 16,
        "CADENZA_MCP_PROXY_TOKEN": "proxy-token-" + "p" * 32,
    }
    commands = {
        "api": ["serve", "--role", "all"],
        "worker": ["worker"],
        "agents": ["agents"],
        "mcp-proxy": ["mcp-proxy"],
    }
    ports = {role: free_port() for role in commands}
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(role: str) -> None:
        with (tmp / f"{role}.log").open("wb") as log:  # the child keeps its own descriptor
            procs[role] = subprocess.Popen(
                [sys.executable, "-m", "cadenza", *commands[role], "--port", str(ports[role])],
                cwd=tmp,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    try:
        start("api")  # migrates the database before the others open it
        wait_listening(procs["api"], ports["api"], START_TIMEOUT_S, "cadenza serve")
        for role in ("worker", "agents", "mcp-proxy"):
            start(role)
        out: dict[str, str] = {}
        for role, port in ports.items():
            wait_listening(procs[role], port, START_TIMEOUT_S, f"cadenza {role}")
            assert scrape(port, None)[0] == 401, role
            status, text = scrape(port, METRICS_TOKEN)
            assert status == 200, role
            out[role] = text
        yield out
    finally:
        _stop(list(procs.values()))


def test_every_metric_queried_by_a_dashboard_or_a_rule_is_exposed(
    expositions: dict[str, str],
) -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    queried: dict[str, set[str]] = {}
    for where, expr in dashboard_queries():
        for name in metric_names(expr):
            queried.setdefault(name, set()).add(where)
    for rule in rules():
        for name in metric_names(rule["expr"]):
            queried.setdefault(name, set()).add(rule.get("alert") or rule["record"])
    exposed = set().union(*(exposed_names(text) for text in expositions.values()))
    missing = {n: sorted(w) for n, w in queried.items() if n not in exposed | recorded | SYNTHETIC}
    assert missing == {}
    assert len(queried) >= 25  # the tokenizer found the names (a guard against reading none)


def test_the_readiness_checks_are_exposed_on_every_engine_role(
    expositions: dict[str, str],
) -> None:
    for role in ("api", "worker", "agents"):
        assert 'cadenza_dependency_up{dependency="database"} 1.0' in expositions[role], role
    assert "cadenza_mcp_breaker_state" in exposed_names(expositions["mcp-proxy"])
