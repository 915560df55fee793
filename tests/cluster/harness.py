"""Start a cluster of real Cadenza processes on loopback, kill and restart them, stop them.

    topology = Topology(database_url=pg_url, roles={"api": 2, "worker": 3})
    async with Cluster(topology, tmp_path) as cluster:
        api1 = cluster.client("api-1")            # an admin API key, over HTTP
        await cluster.kill("worker-2")            # SIGKILL
        await cluster.restart("worker-2")         # the same identity and port, until ready

Every process is ``sys.executable -m ...`` with ``CADENZA_*`` settings in its environment (the
rest of the environment is inherited, PYTHONPATH included, so the code under test runs) and
its own log file under ``<root>/logs``; when the block fails, the tail of every log is
printed. The schema is created once (``cadenza db upgrade``) before anything starts; API 1
starts first and creates the first admin; the test then logs in and creates an API key over
HTTP. All API processes share one token secret.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp
from tests.api.harness import Client
from tests.cluster.topology import HttpReady, LogReady, Role, Topology
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "cluster-admin-password-1"
# upper bounds, not waits: a loaded 2-core machine takes many seconds to start a process
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
UPGRADE_TIMEOUT_S = 120.0
PROBE_INTERVAL_S = 0.05


def base_env(topology: Topology, root: Path) -> dict[str, str]:
    """The environment of every process: the parent's without its CADENZA_* settings, then
    the cluster's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
    # the repository root too: ``python -m tests.cluster.external_worker``
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(ROOT)])
    env.update(
        HOME=str(root),  # no user cadenza.toml, no credentials file
        COLUMNS="500",  # the readiness lines stay on one line
        CADENZA_DATABASE_URL=topology.database_url,
        CADENZA_BUS_URL=topology.bus_url,
        CADENZA_ADMIN_PASSWORD=ADMIN_PASSWORD,
        CADENZA_TOKEN_SECRET="cluster-token-secret-" + "c" * 32,
        CADENZA_METRICS_TOKEN="cluster-metrics-token-" + "m" * 32,
        CADENZA_MCP_PROXY_TOKEN="cluster-proxy-token-" + "p" * 32,
        CADENZA_PASSWORD_HASH_N="1024",
        CADENZA_RATE_LIMIT="1000000/minute",
        CADENZA_SHUTDOWN_GRACE_S="0",
        CADENZA_LOG_JSON="false",
    )
    env.update(topology.env)
    return env


@dataclass
class Member:
    """One process slot: its name (``worker-2``), role and port survive restarts."""

    name: str
    role_name: str
    role: Role
    port: int
    log: Path
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    kills: int = 0
    log_offset: int = 0  # where the current incarnation's output begins
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def output(self) -> str:
        """What the current incarnation wrote so far."""
        with self.log.open("rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    def __init__(self, topology: Topology, root: Path) -> None:
        self.topology = topology
        self.root = root
        (root / "logs").mkdir(parents=True, exist_ok=True)
        self.env = base_env(topology, root)
        self.members: dict[str, Member] = {}
        for name, role_name in topology.members():
            role = topology.role(role_name)
            port = free_port() if role.has_port else 0
            self.members[name] = Member(name, role_name, role, port, root / "logs" / f"{name}.log")
        for m in self.members.values():
            self.env.update({k: v.format(port=m.port) for k, v in m.role.exports.items()})
        self.api_key = ""
        self.worker_agent_id = ""
        self._session: aiohttp.ClientSession | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Cluster:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        try:
            await self.start()
        except BaseException:
            await self._fail_and_close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            await self._fail_and_close()
            return
        await self.stop()

    async def _fail_and_close(self) -> None:
        print(self.logs(), file=sys.stderr)
        await self.stop()

    async def start(self) -> None:
        """Schema, API 1 (the first admin), an API key, then every other process at once."""
        await self._upgrade()
        apis = self.apis()
        first = apis[0] if apis else None
        if first is not None:
            await self.restart(first.name)
            self.api_key = await self._bootstrap(first)
        rest = [
            m for m in self.members.values() if m is not first and m.role_name != "external-worker"
        ]
        await asyncio.gather(*(self.restart(m.name) for m in rest))
        if self.topology.external_worker is not None:
            self.worker_agent_id = await self._register_worker_agent()
            await self.restart("external-worker-1")

    async def _upgrade(self) -> None:
        log = self.root / "logs" / "db-upgrade.log"
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cadenza", "db", "upgrade",
                env=self.env, cwd=self.root, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        code = await asyncio.wait_for(proc.wait(), UPGRADE_TIMEOUT_S)
        assert code == 0, f"cadenza db upgrade failed ({code}):\n{log.read_text()}"

    async def _bootstrap(self, api: Member) -> str:
        """Log in as the admin and create an admin API key (it does not expire mid-run)."""
        anonymous = Client(api.url, self.session)
        admin = await anonymous.login("admin", ADMIN_PASSWORD)
        r = await admin.post("/api/v1/api-keys", {"name": "cluster", "role": "admin"})
        assert r.status == 201, r.body
        secret: str = r.body["secret"]
        return secret

    async def _register_worker_agent(self) -> str:
        spec = self.topology.external_worker
        assert spec is not None
        r = await self.client(self.api(1).name).post(
            "/api/v1/agents/register",
            {
                "name": "cluster-external-worker",
                "type": "worker",
                "capabilities": [spec.capability],
                "capacity": 8,
            },
        )
        assert r.status == 201, r.body
        agent_id: str = r.body["id"]
        return agent_id

    async def stop(self) -> None:
        """SIGTERM every process, SIGKILL the ones still there after STOP_TIMEOUT_S."""
        await asyncio.gather(*(self._terminate(m) for m in self.members.values()))
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _terminate(self, m: Member) -> None:
        if m.proc is None or m.proc.returncode is not None:
            return
        m.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(m.proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            m.proc.kill()
            await m.proc.wait()

    # ---- faults ------------------------------------------------------------------------------
    async def kill(self, name: str) -> None:
        """SIGKILL the process (it must be running) and reap it."""
        m = self.members[name]
        assert m.proc is not None, f"{name} never started"
        assert m.alive, f"{name} died by itself:\n{m.tail()}"
        m.ready.clear()
        m.proc.send_signal(signal.SIGKILL)
        await m.proc.wait()
        m.kills += 1

    async def restart(self, name: str) -> None:
        """Start the process (again: same name, identity and port) and wait until ready."""
        m = self.members[name]
        assert not m.alive, f"{name} is running"
        m.ready.clear()
        with m.log.open("ab") as out:
            m.log_offset = out.tell()
            m.starts += 1
            out.write(f"==== start {m.starts} ====\n".encode())
            out.flush()
            m.log_offset = out.tell()
            m.proc = await asyncio.create_subprocess_exec(
                *self._argv(m),
                env=self.env | {"CADENZA_WORKER_ID": m.name},
                cwd=self.root,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        await self._until_ready(m)
        m.ready.set()

    def _argv(self, m: Member) -> list[str]:
        argv = [sys.executable, "-m", *(a.format(port=m.port) for a in m.role.argv)]
        if m.role_name == "external-worker":
            spec = self.topology.external_worker
            assert spec is not None
            argv += [
                "--api", self.api(spec.polls).url, "--key", self.api_key,
                "--agent-id", self.worker_agent_id, "--name", m.name,
            ]  # fmt: skip
        return argv

    async def _until_ready(self, m: Member) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert m.proc is not None
            if m.proc.returncode is not None:
                raise AssertionError(f"{m.name} exited ({m.proc.returncode}):\n{m.tail(60)}")
            if await self._probe(m):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{m.name} not ready in {READY_TIMEOUT_S:g}s:\n{m.tail(60)}")
            await asyncio.sleep(PROBE_INTERVAL_S)

    async def _probe(self, m: Member) -> bool:
        ready = m.role.ready
        if isinstance(ready, LogReady):
            return ready.matches(m.output())
        assert isinstance(ready, HttpReady)
        try:
            async with self.session.get(m.url + ready.path) as r:
                return r.status == 200
        except (aiohttp.ClientError, OSError):
            return False

    # ---- access ------------------------------------------------------------------------------
    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use the cluster as an async context manager"
        return self._session

    def apis(self) -> list[Member]:
        return [m for m in self.members.values() if m.role.serves_api]

    def api(self, number: int) -> Member:
        """API process ``number`` (1-based)."""
        return self.apis()[number - 1]

    def client(self, name: str) -> Client:
        """An HTTP client of process ``name`` acting with the cluster's admin API key."""
        return Client(self.members[name].url, self.session, token=self.api_key)

    def logs(self, lines: int = 40) -> str:
        parts = [
            f"---- {m.name} ({m.role_name}) ----\n{m.tail(lines)}" for m in self.members.values()
        ]
        return "\n".join(["==== cluster logs ====", *parts])

    def kills(self) -> dict[str, int]:
        return {m.name: m.kills for m in self.members.values()}
