"""deploy/compose/'s edges checked against compose.yaml and the code: HAProxy in front of the
APIs (structure, ``haproxy -c``), Prometheus's targets (``promtool check config``), Grafana's
provisioning, the Vector log shipper."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.deploy.compose_model import (
    COMPOSE_DIR,
    ROOT,
    Service,
    cadenza_services,
    load,
    option,
)
from tests.logs import json_log_lines

DOC = load()
SERVERS = [s for s in cadenza_services(DOC) if not s.one_shot]
HAPROXY_CFG = COMPOSE_DIR / "proxy" / "haproxy.cfg"
VECTOR = COMPOSE_DIR / "vector" / "vector.yaml"
MONITORING = ROOT / "deploy" / "k8s" / "monitoring"


def service_spec(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = DOC["services"][name]
    return spec


def mounts(service: str) -> dict[str, str]:
    """Bind mounts of a service: target -> source (relative to deploy/compose)."""
    out: dict[str, str] = {}
    for volume in service_spec(service).get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith((".", "/")):
            out[target] = source
    return out


def service_using(image_prefix: str) -> str:
    found = [str(n) for n, s in DOC["services"].items() if str(s["image"]).startswith(image_prefix)]
    assert len(found) == 1, (image_prefix, found)
    return found[0]


# ---- the proxy ----------------------------------------------------------------------------------
def haproxy_sections(text: str) -> dict[str, list[list[str]]]:
    """``"backend cadenza-api"`` -> its directives, each split into words (comments dropped)."""
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = sections.setdefault(" ".join(line.split()), [])
        else:
            assert current is not None, f"directive outside a section: {line!r}"
            current.append(line.split())
    return sections


def directives(section: list[list[str]], keyword: str) -> list[list[str]]:
    return [d[1:] for d in section if d[0] == keyword]


def test_proxy_sends_to_every_api_on_its_port_with_readiness_checks() -> None:
    proxy = service_using("haproxy:")
    assert mounts(proxy) == {"/usr/local/etc/haproxy/haproxy.cfg": "./proxy/haproxy.cfg"}
    sections = haproxy_sections(HAPROXY_CFG.read_text())
    (frontend,) = [s for name, s in sections.items() if name == "frontend cadenza"]
    (bind,) = directives(frontend, "bind")
    published = [str(p) for p in service_spec(proxy)["ports"]]
    assert [p.rsplit(":", 1)[1] for p in published] == [bind[0].lstrip(":")]
    (use,) = directives(frontend, "default_backend")
    backend = sections[f"backend {use[0]}"]
    apis = {f"{s.name}:{s.port}" for s in SERVERS if s.command[0] == "serve"}
    servers = directives(backend, "server")
    assert {words[1] for words in servers} == apis
    assert all("check" in words for words in servers)
    checks = directives(backend, "http-check")
    assert checks[0][:5] == ["send", "meth", "GET", "uri", "/health/readiness"]
    assert ["expect", "status", "200"] in directives(backend, "http-check")
    assert {dep for dep, c in service_spec(proxy)["depends_on"].items()} == {
        a.split(":")[0] for a in apis
    }


def test_proxy_keeps_streams_and_websockets_open() -> None:
    sections = haproxy_sections(HAPROXY_CFG.read_text())
    timeouts = {d[0]: d[1] for d in directives(sections["defaults"], "timeout")}
    for name in ("client", "server", "tunnel"):
        assert timeouts[name] == "1h", name  # SSE and WebSocket streams stay open
    # no request buffering, no forced close that would end a stream
    words = {w for s in sections.values() for d in s for w in d}
    assert not words & {"http-buffer-request", "httpclose", "forceclose"}
    # a stop (SIGUSR1) lets open streams go before Compose's SIGKILL would cut them
    (hard_stop,) = directives(sections["global"], "hard-stop-after")
    proxy = Service(service_using("haproxy:"), service_spec(service_using("haproxy:")))
    assert int(hard_stop[0].removesuffix("s")) < proxy.stop_grace_s
    assert ["abortonclose"] in directives(sections["defaults"], "option")


def test_proxy_config_passes_haproxys_own_check() -> None:
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if haproxy is None:
        if os.environ.get("CI"):
            raise AssertionError("haproxy not installed: make system-deps")
        pytest.skip("haproxy not installed (make system-deps); structure checked above")
    done = subprocess.run(
        [haproxy, "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "[WARNING]" in line]
    # the API services' names resolve only on the Compose network
    assert all("could not resolve address 'cadenza-api-" in w for w in warnings), warnings


# ---- Prometheus and Grafana ---------------------------------------------------------------------
def prometheus_config() -> tuple[Path, dict[str, Any]]:
    """The file compose.yaml mounts as Prometheus's --config.file, parsed."""
    prometheus = service_using("prom/prometheus:")
    config_file = option(service_spec(prometheus)["command"], "--config.file")
    assert config_file is not None
    path = COMPOSE_DIR / mounts(prometheus)[config_file]
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return path, config


def test_prometheus_scrapes_every_cadenza_server_by_name_and_port_with_the_token() -> None:
    prometheus = service_using("prom/prometheus:")
    _, config = prometheus_config()
    by_name = {s.name: s for s in SERVERS}
    scraped: dict[str, set[int]] = {}
    secret_targets = {f"/run/secrets/{name}" for name in service_spec(prometheus)["secrets"]}
    for job in config["scrape_configs"]:
        if job["job_name"] == "prometheus":
            continue
        assert job["authorization"]["credentials_file"] in secret_targets, job["job_name"]
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                # a static name of a replicated service reaches one replica only
                assert by_name[host].replicas == 1, f"{target}: use dns_sd_configs"
                scraped.setdefault(host, set()).add(int(port))
        for dns in job.get("dns_sd_configs", []):
            assert dns["type"] == "A"
            for host in dns["names"]:
                scraped.setdefault(host, set()).add(int(dns["port"]))
    assert scraped == {s.name: {s.port} for s in SERVERS}
    (secret,) = service_spec(prometheus)["secrets"]
    assert DOC["secrets"][secret] == {"environment": "CADENZA_METRICS_TOKEN"}


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            raise AssertionError("promtool not installed: make system-deps")
        pytest.skip("promtool not installed (make system-deps)")
    path, _ = prometheus_config()
    # promtool opens the credentials file: the Compose secret's path, here a file of ours
    token = tmp_path / "metrics-token"
    token.write_text("t" * 32)
    text = path.read_text().replace("/run/secrets/metrics-token", str(token))
    (tmp_path / "prometheus.yml").write_text(text)
    rules = MONITORING / "prometheus" / "rules"
    if rules.is_dir():
        shutil.copytree(rules, tmp_path / "rules")
    done = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_is_provisioned_with_prometheus_and_the_mounted_dashboards() -> None:
    grafana = service_using("grafana/grafana:")
    spec = service_spec(grafana)
    assert spec["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith(
        "${GRAFANA_ADMIN_PASSWORD:?"
    )
    m = mounts(grafana)
    assert m["/etc/grafana/provisioning"] == "./grafana/provisioning"
    provisioning = COMPOSE_DIR / "grafana" / "provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "cadenza.yml").read_text())
    (provider,) = providers["providers"]
    dashboards_target = provider["options"]["path"]
    assert m[dashboards_target] == "../k8s/monitoring/grafana/dashboards"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    prometheus = service_using("prom/prometheus:")
    assert source["url"] == f"http://{prometheus}:9090"
    assert (source["type"], source["uid"]) == ("prometheus", "prometheus")


def test_shared_monitoring_files_exist_and_use_the_provisioned_datasource() -> None:
    # written by the observability part of issue 12 (deploy/k8s/monitoring/)
    if not MONITORING.is_dir():
        pytest.skip("deploy/k8s/monitoring/ not in this tree yet (observability branch)")
    for service in ("prom/prometheus:", "grafana/grafana:"):
        for source in mounts(service_using(service)).values():
            assert (COMPOSE_DIR / source).exists(), source
    dashboards = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        uids = {
            s.get("uid")
            for s in _datasources(json.loads(path.read_text()))
            if isinstance(s, dict) and s.get("type") == "prometheus"
        }
        assert uids <= {"prometheus", "${datasource}", "$datasource"}, (path.name, uids)


def _datasources(node: Any) -> list[Any]:
    if isinstance(node, dict):
        own = [node["datasource"]] if "datasource" in node else []
        return own + [d for v in node.values() for d in _datasources(v)]
    if isinstance(node, list):
        return [d for v in node for d in _datasources(v)]
    return []


# ---- logs -------------------------------------------------------------------------------------
def test_log_shipper_reads_this_projects_containers_and_cadenzas_json_fields() -> None:
    vector = service_using("timberio/vector:")
    assert service_spec(vector)["profiles"] == ["logging"]
    config = yaml.safe_load(VECTOR.read_text())
    (source,) = config["sources"].values()
    assert source["include_labels"] == [f"com.docker.compose.project={DOC['name']}"]
    (transform,) = config["transforms"].values()
    assert transform["inputs"] == list(config["sources"])
    (sink,) = config["sinks"].values()
    assert sink["inputs"] == list(config["transforms"])
    assert sink["endpoints"] == [f"http://{service_using('docker.elastic.co/elasticsearch/')}:9200"]
    # the fields the transform reads are the ones Cadenza's JSON lines carry
    with json_log_lines("INFO") as stream:
        import logging

        logging.getLogger("cadenza.test").info("hello")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert {"timestamp", "level", "logger", "event"} <= set(line)
    for field in ("timestamp", "event"):
        assert f"fields.{field}" in transform["source"]
