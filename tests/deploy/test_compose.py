"""deploy/compose/ checked without a Docker engine: the Compose specification schema (raw and
interpolated with a filled-in .env.example), the settings, CLI commands, ports, probes, the
proxy, Prometheus, Grafana and the log shipper against the code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import typer.core
import typer.main
import yaml
from tests.deploy.compose_model import (
    COMPOSE_DIR,
    ENV_EXAMPLE,
    ROOT,
    InterpolationError,
    Service,
    cadenza_services,
    compose_files,
    filled_env,
    interpolate,
    interpolate_tree,
    load,
    option,
    read_env_file,
    references,
    required_variables,
    strings,
)
from tests.logs import json_log_lines

from cadenza.entrypoints.cli import app
from cadenza.settings import Settings

DOC = load()
SERVICES = cadenza_services(DOC)
SERVERS = [s for s in SERVICES if not s.one_shot]
HAPROXY_CFG = COMPOSE_DIR / "proxy" / "haproxy.cfg"
VECTOR = COMPOSE_DIR / "vector" / "vector.yaml"
MONITORING = ROOT / "deploy" / "k8s" / "monitoring"


def compose_schema() -> dict[str, Any]:
    """The Compose specification schema check-jsonschema vendors (--builtin-schema
    vendor.compose-spec), read offline from the installed package."""
    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text()
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_errors(doc: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(compose_schema())
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def setting_env_names() -> set[str]:
    """CADENZA_* names the settings model reads, from the model itself (prefix + field name,
    or a field's own alias)."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias or field.alias
        assert alias is None or isinstance(alias, str), f"{name}: alias kind not handled"
        names.add((alias or prefix + name).upper())
    return names


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


# ---- the schema ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", compose_files(), ids=lambda p: p.name)
def test_compose_file_validates_against_the_compose_specification_as_written(path: Path) -> None:
    doc = load(path)
    assert "version" not in doc  # obsolete in the Compose specification
    assert schema_errors(doc) == []


@pytest.mark.parametrize("path", compose_files(), ids=lambda p: p.name)
def test_compose_file_validates_once_interpolated_with_a_filled_in_env_file(path: Path) -> None:
    doc = load(path)
    resolved = interpolate_tree(doc, filled_env(doc))
    assert not [s for s in strings(resolved) if "${" in s]
    assert schema_errors(resolved) == []


def test_every_required_variable_stops_compose_when_empty() -> None:
    env = filled_env(DOC)
    for name in sorted(required_variables(DOC)):
        with pytest.raises(InterpolationError, match=f"^{name}: set {name} in .env$"):
            interpolate_tree(DOC, env | {name: ""})


def test_interpolation_follows_compose_rules() -> None:
    env = {"A": "a", "E": ""}
    assert interpolate("$$A ${A} $A ${E:-d} ${E-d} ${U-d} ${A:+x} ${E:+x} ${U+x}", env) == (
        "$A a a d  d x  "
    )
    assert interpolate("${U:-p${A}q}", env) == "paq"
    with pytest.raises(InterpolationError, match=r"^E: need E$"):
        interpolate("${E:?need E}", env)
    assert interpolate("${E?fine}", env) == ""


# ---- .env.example -------------------------------------------------------------------------------
def test_env_example_has_a_line_for_every_variable_compose_reads_and_no_other() -> None:
    referenced = {r.name for text in strings(DOC) for r in references(text)}
    assert set(read_env_file()) == referenced


def test_env_example_gives_no_value_to_anything() -> None:
    # an example value would be a default password; every secret is the user's own
    assert {k: v for k, v in read_env_file().items() if v} == {}


def test_the_env_file_is_not_committed() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(COMPOSE_DIR / ".env")], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0
    assert ENV_EXAMPLE.exists()


# ---- settings and commands ------------------------------------------------------------------
def test_every_cadenza_variable_is_a_setting() -> None:
    known = setting_env_names()
    used = {k for s in SERVICES for k in s.environment if k.startswith("CADENZA_")}
    used |= {k for k in read_env_file() if k.startswith("CADENZA_")}
    assert used, "no CADENZA_* variable found"
    assert sorted(used - known) == []


def test_every_cadenza_service_gets_the_secrets_a_multi_process_deployment_needs() -> None:
    # no key files beside a MySQL/PostgreSQL database (docs/mysql.md): every process needs them
    for service in SERVICES:
        env = service.environment
        for name in ("CADENZA_DATABASE_URL", "CADENZA_TOKEN_SECRET", "CADENZA_SECRETS_KEY"):
            assert env.get(name), (service.name, name)
    for service in SERVERS:
        if service.command[0] == "serve":
            assert service.environment.get("CADENZA_ADMIN_PASSWORD"), service.name


def parse_cli(argv: list[str]) -> dict[str, object]:
    """Parse ``cadenza ARGV`` as the CLI would, without running it: the subcommand must exist,
    an unknown option or a bad value raises (typer's own click); the parameters parsed."""
    command = typer.main.get_command(app)
    args = list(argv)
    while isinstance(command, typer.core.TyperGroup):
        assert args, f"{argv}: a command group needs a subcommand"
        name = args.pop(0)
        assert name in command.commands, f"no command {name!r} in {sorted(command.commands)}"
        command = command.commands[name]
    params: dict[str, object] = command.make_context(command.name or "", args).params
    return params


def test_the_cli_check_refuses_what_the_cli_refuses() -> None:
    assert parse_cli(["worker", "--port", "9101"])["port"] == 9101
    with pytest.raises(Exception, match="No such option: --hots"):
        parse_cli(["worker", "--hots", "0.0.0.0"])
    with pytest.raises(Exception, match="less than or equal to 65535"):
        parse_cli(["agents", "--port", "70000"])
    with pytest.raises(AssertionError, match="no command 'upgrad'"):
        parse_cli(["db", "upgrad"])


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_cadenza_service_runs_a_real_cli_command(service: Service) -> None:
    params = parse_cli(service.command)
    port = option(service.command, "--port")
    if port is not None:
        assert params["port"] == int(port)


@pytest.mark.parametrize("service", SERVERS, ids=lambda s: s.name)
def test_every_server_listens_on_all_interfaces_on_its_role_port(service: Service) -> None:
    role_ports = {"serve": 8080, "worker": 9101, "agents": 9102, "mcp-proxy": 9103}
    assert option(service.command, "--host") == "0.0.0.0"
    assert service.port == role_ports[service.command[0]]


@pytest.mark.parametrize("service", SERVERS, ids=lambda s: s.name)
def test_every_healthcheck_probes_the_readiness_of_its_own_port(service: Service) -> None:
    # the image has no curl: Python's urllib, which fails on a 503
    test = service.spec["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert service.health_url == f"http://127.0.0.1:{service.port}/health/readiness"


def test_the_migration_runs_first_and_once() -> None:
    (migrate,) = [s for s in SERVICES if s.one_shot]
    assert migrate.command == ["db", "upgrade"]
    for service in SERVERS:
        assert service.depends_on()[migrate.name] == "service_completed_successfully"
    for service in SERVICES:
        for dep, condition in service.depends_on().items():
            if dep in {s.name for s in SERVICES}:
                continue
            assert condition == "service_healthy", (service.name, dep)
            assert "healthcheck" in service_spec(dep), dep


def test_the_second_api_starts_once_the_first_is_ready() -> None:
    # the first API creates the first admin; two starting at once on an empty database would
    # race to create it (the loser exits and is restarted)
    apis = [s for s in SERVERS if s.command[0] == "serve"]
    assert [s.name for s in apis] == ["cadenza-api-1", "cadenza-api-2"]
    assert apis[1].depends_on()[apis[0].name] == "service_healthy"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_cadenza_service_is_hardened_and_stops_gracefully(service: Service) -> None:
    spec = service.spec
    assert spec["build"] == {"context": "../..", "dockerfile": "Dockerfile"}
    assert (COMPOSE_DIR / spec["build"]["context"]).resolve() == ROOT
    assert spec["user"] == "10001:10001"
    assert spec["read_only"] is True
    assert "/tmp" in spec["tmpfs"]
    assert spec["deploy"]["resources"]["limits"]["memory"]
    env = service.environment
    assert env["CADENZA_LOG_JSON"] == "true"
    # SIGKILL only after the engine's grace for running tasks, plus the API's 5 s of
    # connection draining (bootstrap/serve.py: timeout_graceful_shutdown)
    grace = float(env["CADENZA_SHUTDOWN_GRACE_S"])
    m = re.fullmatch(r"(\d+)s", spec["stop_grace_period"])
    assert m is not None
    assert int(m.group(1)) >= grace + 5
    if not service.one_shot:
        assert spec["restart"] == "unless-stopped"


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
