"""deploy/compose/compose.yaml checked without a Docker engine: the Compose specification
schema (raw and interpolated with a filled-in .env.example), .env.example, and the Cadenza
services against the code (settings, CLI commands, ports, probes, start order, hardening). The
proxy, Prometheus, Grafana and the log shipper: test_compose_proxy_monitoring.py."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import typer.core
import typer.main
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

from cadenza.entrypoints.cli import app
from cadenza.settings import Settings

DOC = load()
SERVICES = cadenza_services(DOC)
SERVERS = [s for s in SERVICES if not s.one_shot]


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
            assert "healthcheck" in DOC["services"][dep], dep


def test_the_apis_start_together_and_share_the_first_admins_password() -> None:
    # on an empty database both create the first admin: one insert wins, the other API reads
    # it back and starts (tests/integration/test_first_admin_race.py); neither waits
    apis = [s for s in SERVERS if s.command[0] == "serve"]
    assert [s.name for s in apis] == ["cadenza-api-1", "cadenza-api-2"]
    names = {a.name for a in apis}
    for api in apis:
        assert not names & set(api.depends_on()), api.name
        assert api.depends_on() == apis[0].depends_on(), api.name
        password = api.environment["CADENZA_ADMIN_PASSWORD"]
        assert password == "${CADENZA_ADMIN_PASSWORD:?set CADENZA_ADMIN_PASSWORD in .env}"


def test_every_api_accepts_the_host_names_the_proxy_and_prometheus_use() -> None:
    apis = [s for s in SERVERS if s.command[0] == "serve"]
    for api in apis:
        allowed = json.loads(interpolate(api.environment["CADENZA_ALLOWED_HOSTS"], {}))
        # the proxy's readiness checks send Host: localhost; Prometheus the service name
        assert {"localhost", *(a.name for a in apis)} <= set(allowed), api.name


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
