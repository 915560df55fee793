"""The Compose topology rehearsed natively: the Cadenza services of compose.yaml started as
``sys.executable -m cadenza <command>`` on loopback, in the order their ``depends_on`` gives,
with the environment of their Compose service (interpolated from a filled-in .env.example).

What changes from the containers (and only this):

* the stores are stand-ins on loopback: ``mysql`` -> a fresh MariaDB database (MySQL 8 is not
  installable here), ``redis`` -> the session's redis-server, ``kafka`` -> librdkafka's mock
  cluster with a topic of the run's own; URLs naming those services are rewritten to them;
* each process gets a free port for its ``--port`` (``--host`` 127.0.0.1), and URLs naming a
  Cadenza service (``http://cadenza-mcp-proxy:9103/mcp``) point at its first process;
* replicas become processes ``<service>-1``, ``<service>-2``, ...
* ``CADENZA_TRUSTED_PROXIES`` naming a service's fixed address (the proxy's) names 127.0.0.1,
  where that service connects from on loopback (tests/deploy/rehearsal_proxy.py);
* the environment is the test's own without its ``CADENZA_*`` variables, ``HOME`` a
  temporary directory (no user cadenza.toml), then the service's ``environment:``.

The proxy, Prometheus, Grafana and the logging services are not started (their configuration
is checked by test_compose_proxy_monitoring.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from tests.deploy.compose_model import Service, cadenza_services, fixed_addresses, with_option
from tests.net import free_port

# upper bounds, not waits (a loaded 2-core machine starts a process in several seconds)
READY_TIMEOUT_S = 60.0
MIGRATE_TIMEOUT_S = 60.0
PROBE_INTERVAL_S = 0.05


@dataclass(frozen=True)
class StandIns:
    """Loopback servers standing in for the Compose store services."""

    database_url: str  # a fresh database on the MariaDB server
    redis_url: str  # the Redis server (its db number comes from the Compose URL)
    kafka_brokers: str  # host:port[,host:port]
    kafka_topic: str  # the run's own topic

    def rewrite(self, service: str, url: str) -> str | None:
        """``url`` (naming Compose service ``service``) pointed at the stand-in; None when
        ``service`` is not a store."""
        parts = urlsplit(url)
        if service == "mysql":
            db = urlsplit(self.database_url)
            return urlunsplit(parts._replace(netloc=db.netloc, path=db.path))
        if service == "redis":
            return urlunsplit(parts._replace(netloc=urlsplit(self.redis_url).netloc))
        if service == "kafka":
            query = dict(parse_qsl(parts.query)) | {"topic": self.kafka_topic}
            return urlunsplit(parts._replace(netloc=self.kafka_brokers, query=urlencode(query)))
        return None


@dataclass
class Process:
    name: str
    service: Service
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def argv(self) -> list[str]:
        args = self.service.command
        if not self.service.one_shot:
            args = with_option(with_option(args, "--host", "127.0.0.1"), "--port", str(self.port))
        return [sys.executable, "-m", "cadenza", *args]

    @property
    def health_url(self) -> str:
        """The service's healthcheck URL with this process's port."""
        path = urlsplit(self.service.health_url).path
        return self.url + path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Rehearsal:
    """``async with Rehearsal(doc, stand_ins, root) as r``: every Cadenza process started and
    ready; on leaving, stopped wave by wave in reverse (SIGTERM), exit codes in ``r.exits``."""

    def __init__(self, doc: Mapping[str, Any], stand_ins: StandIns, root: Path) -> None:
        self.doc = doc
        self.stand_ins = stand_ins
        (root / "logs").mkdir(parents=True, exist_ok=True)
        self.root = root
        self.services = cadenza_services(doc)
        self.processes: dict[str, Process] = {}
        for service in self.services:
            for name in service.member_names():
                port = 0 if service.one_shot else free_port()
                self.processes[name] = Process(name, service, port, root / "logs" / f"{name}.log")
        for p in self.processes.values():
            p.env = self._environment(p.service)
        self.waves: list[list[Service]] = []
        self.exits: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None

    # ---- the environment ----------------------------------------------------------------------
    def _environment(self, service: Service) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
        env["HOME"] = str(self.root)  # no user cadenza.toml, no credentials file
        env["COLUMNS"] = "500"
        env.update({k: self._rewrite(k, v) for k, v in service.environment.items()})
        return env

    def _rewrite(self, key: str, value: str) -> str:
        if key == "CADENZA_TRUSTED_PROXIES":
            return self._trusted(value)
        parts = urlsplit(value)
        if not parts.scheme or not parts.netloc or parts.hostname is None:
            return value
        host = parts.hostname
        stand_in = self.stand_ins.rewrite(host, value)
        if stand_in is not None:
            return stand_in
        for service in self.services:
            if service.name == host:
                first = self.processes[service.member_names()[0]]
                assert parts.port == service.port, f"{key}: {host}:{parts.port}, not its port"
                return urlunsplit(parts._replace(netloc=f"127.0.0.1:{first.port}"))
        assert host not in self.doc["services"], f"{key}: no loopback stand-in for {host}"
        return value

    def _trusted(self, value: str) -> str:
        """Each trusted proxy must be a service's fixed address; on loopback it is 127.0.0.1."""
        fixed = fixed_addresses(self.doc)
        entries = json.loads(value)
        for entry in entries:
            assert entry in fixed, f"CADENZA_TRUSTED_PROXIES: {entry} is no service's address"
        return json.dumps(["127.0.0.1"] if entries else [])

    # ---- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> Rehearsal:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        try:
            await self._start()
        except BaseException:
            print(self.logs(), file=sys.stderr)
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            print(self.logs(), file=sys.stderr)
        await self.stop()

    async def _start(self) -> None:
        """Start services as Compose does: each once its dependencies meet their conditions
        (started, healthy, completed successfully); the stores are up already."""
        names = {s.name for s in self.services}
        state: dict[str, str] = {"mysql": "healthy", "redis": "healthy", "kafka": "healthy"}
        pending = list(self.services)
        while pending:
            wave = [s for s in pending if self._startable(s, state, names)]
            assert wave, f"no service can start: {[s.name for s in pending]} ({state})"
            self.waves.append(wave)
            await asyncio.gather(*(self._start_service(s) for s in wave))
            for s in wave:
                state[s.name] = "completed" if s.one_shot else "healthy"
                pending.remove(s)

    def _startable(self, service: Service, state: Mapping[str, str], names: set[str]) -> bool:
        needs = {
            "service_started": {"healthy", "completed"},
            "service_healthy": {"healthy"},
            "service_completed_successfully": {"completed"},
        }
        for dep, condition in service.depends_on().items():
            if dep not in state and dep not in names:
                # a service of an inactive profile: only an optional dependency may name one
                assert not service.requires(dep), f"{service.name} needs {dep}, not rehearsed"
                continue
            if state.get(dep) not in needs[condition]:
                return False
        return True

    async def _start_service(self, service: Service) -> None:
        members = [self.processes[n] for n in service.member_names()]
        await asyncio.gather(*(self._spawn(p) for p in members))
        if service.one_shot:
            for p in members:
                assert p.proc is not None
                code = await asyncio.wait_for(p.proc.wait(), MIGRATE_TIMEOUT_S)
                self.exits[p.name] = code
                assert code == 0, f"{p.name} exited {code}:\n{p.tail()}"
            return
        await asyncio.gather(*(self._until_healthy(p) for p in members))

    async def _spawn(self, p: Process) -> None:
        with p.log.open("ab") as out:
            p.proc = await asyncio.create_subprocess_exec(
                *p.argv,
                env=p.env,
                cwd=self.root,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def _until_healthy(self, p: Process) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert p.proc is not None
            assert p.proc.returncode is None, f"{p.name} exited {p.proc.returncode}:\n{p.tail()}"
            try:
                async with self.session.get(p.health_url) as r:
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, OSError):
                pass
            assert time.monotonic() < deadline, f"{p.name} not healthy:\n{p.tail()}"
            await asyncio.sleep(PROBE_INTERVAL_S)

    async def stop(self) -> None:
        """SIGTERM wave by wave, the last started first (as Compose stops dependents first);
        a process still there after its service's stop_grace_period is SIGKILLed."""
        for wave in reversed(self.waves):
            members = [self.processes[n] for s in wave for n in s.member_names()]
            await asyncio.gather(*(self._terminate(p) for p in members))
        # anything started outside a finished wave (a failed start)
        await asyncio.gather(*(self._terminate(p) for p in self.processes.values()))
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _terminate(self, p: Process) -> None:
        if p.proc is None or p.proc.returncode is not None:
            if p.proc is not None:
                self.exits.setdefault(p.name, p.proc.returncode or 0)
            return
        p.proc.send_signal(signal.SIGTERM)
        try:
            self.exits[p.name] = await asyncio.wait_for(p.proc.wait(), p.service.stop_grace_s)
        except TimeoutError:
            p.proc.kill()
            await p.proc.wait()
            self.exits[p.name] = -signal.SIGKILL

    # ---- access -------------------------------------------------------------------------------
    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use the rehearsal as an async context manager"
        return self._session

    def members(self, command: str) -> list[Process]:
        """The processes whose command is ``command`` (``serve``, ``worker``, ...)."""
        return [p for p in self.processes.values() if p.service.command[0] == command]

    def servers(self) -> list[Process]:
        return [p for p in self.processes.values() if not p.service.one_shot]

    def logs(self, lines: int = 40) -> str:
        parts = [f"---- {p.name} ----\n{p.tail(lines)}" for p in self.processes.values()]
        return "\n".join(["==== rehearsal logs ====", *parts])
