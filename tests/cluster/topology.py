"""What a cluster is made of: roles (how to start one process of each, how to tell it is ready)
and a ``Topology`` (how many of each, on which database and bus, with which extra settings).

Each part of issue 11 that lands later is one line here or in a ``Topology``:

* a bus adapter: ``Topology(bus_url=redis_url)`` or ``bus_url="kafka://127.0.0.1:PORT"``;
* MariaDB: ``Topology(database_url="mysql+asyncmy://...")``;
* ops ports on workers (``cadenza worker --port``): ``ops_ports=True`` switches the ``worker``
  role to its HTTP readiness and scrapes its ``/metrics``; ``check_metrics=True`` then compares
  the sums with the store;
* the agent service and the MCP proxy: ``roles={"agents": 2, "mcp-proxy": 1, ...}``;
* stored external-worker assignments: ``external_worker=ExternalWorker(polls=2)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# The order processes start in: API 1 first (it creates the first admin), then the rest.
START_ORDER = ("api", "all", "agents", "mcp-proxy", "worker")


@dataclass(frozen=True)
class HttpReady:
    """Ready when ``GET path`` on the process's port answers 200."""

    path: str = "/health/readiness"


@dataclass(frozen=True)
class LogReady:
    """Ready when a line of the process's log (since its start) matches ``pattern``."""

    pattern: str

    def matches(self, text: str) -> bool:
        return re.search(self.pattern, text, re.MULTILINE) is not None


Readiness = HttpReady | LogReady


@dataclass(frozen=True)
class Role:
    """How to run one process of a role. ``argv`` follows ``python -m``; ``{port}`` is the
    process's own port. ``exports``: settings every *other* process gets from this one
    (``{port}`` is this process's port), e.g. the MCP proxy's URL for the workers."""

    argv: tuple[str, ...]
    ready: Readiness
    has_port: bool = False
    serves_api: bool = False  # /api/v1 on its port (the cluster's HTTP entry points)
    metrics: bool = False  # /metrics on its port
    exports: Mapping[str, str] = field(default_factory=dict)


WORKER_RUNNING = r"^worker \S+ running on "
EXTERNAL_POLLING = r"^external worker \S+ polling "

ROLES: dict[str, Role] = {
    "api": Role(
        ("cadenza", "serve", "--role", "api", "--port", "{port}"),
        HttpReady(),
        has_port=True,
        serves_api=True,
        metrics=True,
    ),
    # API and engine in one process: what the external worker can poll before assignments
    # are stored
    "all": Role(
        ("cadenza", "serve", "--port", "{port}"),
        HttpReady(),
        has_port=True,
        serves_api=True,
        metrics=True,
    ),
    # today: ready when it logs that it runs; with ops_ports, its /health/readiness
    "worker": Role(("cadenza", "worker"), LogReady(WORKER_RUNNING)),
    "agents": Role(
        ("cadenza", "agents", "--port", "{port}"), HttpReady(), has_port=True, metrics=True
    ),
    "mcp-proxy": Role(
        ("cadenza", "mcp-proxy", "--port", "{port}"),
        HttpReady(),
        has_port=True,
        metrics=True,
        exports={"CADENZA_MCP_PROXY_URL": "http://127.0.0.1:{port}/mcp"},
    ),
    # the poller of tests/cluster/external_worker.py; its arguments are added by the cluster
    "external-worker": Role(("tests.cluster.external_worker",), LogReady(EXTERNAL_POLLING)),
}

WORKER_WITH_PORT = Role(
    ("cadenza", "worker", "--port", "{port}"), HttpReady(), has_port=True, metrics=True
)


@dataclass(frozen=True)
class ExternalWorker:
    """An external worker agent process that polls API number ``polls`` (1-based) for the
    ``task`` node of capability ``capability``."""

    polls: int = 1
    capability: str = "shout"


@dataclass(frozen=True)
class Topology:
    database_url: str
    roles: Mapping[str, int] = field(default_factory=lambda: {"api": 2, "worker": 3})
    bus_url: str = "memory://"
    env: Mapping[str, str] = field(default_factory=dict)  # more CADENZA_* settings for all
    ops_ports: bool = False  # workers serve /health, /health/readiness, /metrics on --port
    check_metrics: bool = False  # /metrics summed over processes must agree with the store
    external_worker: ExternalWorker | None = None

    def role(self, name: str) -> Role:
        if name == "worker" and self.ops_ports:
            return WORKER_WITH_PORT
        return ROLES[name]

    def members(self) -> list[tuple[str, str]]:
        """(member name, role name) in start order: ``api-1``, ``api-2``, ``worker-1``, ..."""
        unknown = set(self.roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; known: {sorted(ROLES)}")
        out: list[tuple[str, str]] = []
        for role in START_ORDER:
            out += [(f"{role}-{i}", role) for i in range(1, self.roles.get(role, 0) + 1)]
        if self.external_worker is not None:
            out.append(("external-worker-1", "external-worker"))
        return out
