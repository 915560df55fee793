"""A throwaway PostgreSQL server for one test session, on loopback, with a random password.

The server binaries come from ``/usr/lib/postgresql/<version>/bin`` (Debian's layout; the
newest version wins) or from ``PATH``. When run as root, ``initdb`` and the server run as the
``postgres`` OS user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from tests.net import free_port

T = TypeVar("T")
OS_USER = "postgres"
START_TIMEOUT_S = 60


# ``database_url`` parameters: engine tests that must hold on every SQL backend
# (``pytest -m mariadb`` runs the MariaDB ones only; ``-m "not mariadb"`` leaves them out)
BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


# ... and the in-memory store too, for engine tests that run on one process's store
STORES = [*BACKENDS, "memory"]


def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh database of the backend ``request.param`` names."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/c.db"
    if request.param == "mariadb":
        maria: str = request.getfixturevalue("mariadb_database_url")
        return maria
    url: str = request.getfixturevalue("pg_database_url")
    return url


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries on this machine."""


def find_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl`` of the newest installed version."""

    def version(p: Path) -> tuple[int, ...]:
        parts = p.parent.parent.name.split(".")
        return tuple(int(x) for x in parts if x.isdigit())

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin "
        "or PATH; install them with `make system-deps`"
    )


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion in a private thread (and event loop) from sync code."""

    async def main() -> T:
        return await factory()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    password: str

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls) -> PostgresServer:
        bin_dir = find_bin_dir()
        root = Path(tempfile.mkdtemp(prefix="cadenza-pg-"))
        server = cls(bin_dir, root, free_port(), secrets.token_urlsafe(24))
        try:
            server._initdb()
            server._pg_ctl_start()
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", OS_USER, "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*prefix, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:1])} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}{tail}"
            )

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, OS_USER, OS_USER)
            shutil.chown(pwfile, OS_USER, OS_USER)
        pwfile.chmod(0o600)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()

    def _pg_ctl_start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
        )
        run_async(self._wait_ready)

    async def _wait_ready(self) -> None:
        last: Exception | None = None
        for _ in range(100):
            try:
                conn = await asyncpg.connect(self.url("postgres"), timeout=5)
            except (OSError, asyncpg.PostgresError) as exc:
                last = exc
                await asyncio.sleep(0.1)
                continue
            await conn.close()
            return
        raise RuntimeError(f"PostgreSQL on port {self.port} never accepted connections: {last}")

    def stop(self) -> None:
        """Stop at once (no checkpoint: the data is thrown away) and remove every file."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                pg_ctl = str(self.bin_dir / "pg_ctl")
                self._run(pg_ctl, "-D", str(self.data_dir), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def create_database(server_url: str, name: str | None = None) -> str:
    """Create a database on the server of ``server_url`` and return its URL."""
    name = name or f"t_{uuid.uuid4().hex[:16]}"

    async def create() -> None:
        conn = await asyncpg.connect(server_url, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    run_async(create)
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
