"""A throwaway MariaDB server for one test session, on loopback, with a random password.

``mariadbd`` and ``mariadb-install-db`` come from Debian's ``mariadb-server`` (``make
system-deps``) or ``PATH``. The data directory is a temporary directory; the server listens on
127.0.0.1 only, on a free port, with a socket inside that directory, and durability off
(``innodb_flush_log_at_trx_commit=0``, no doublewrite, no binary log): the data is thrown away.
When run as root, the server runs as the ``mysql`` OS user (``mariadbd`` refuses root).

The only account reachable over TCP is ``cadenza@127.0.0.1`` with a random password, created
by an ``--init-file`` at start-up; ``root`` keeps the socket-only authentication that
``mariadb-install-db`` gives it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncmy
from asyncmy.errors import MySQLError
from tests.net import free_port
from tests.pg import run_async

OS_USER = "mysql"
USER = "cadenza"
START_TIMEOUT_S = 60
# the character set and collation every test database is created with (docs/_parts/mysql.md):
# binary comparison, as on SQLite and PostgreSQL, so "Ab" and "ab" are different names
CHARSET = "utf8mb4"
COLLATION = "utf8mb4_bin"


class MariadbUnavailable(Exception):
    """No MariaDB server binaries on this machine."""


def find_binaries() -> tuple[Path, Path]:
    """``mariadbd`` and ``mariadb-install-db``, from Debian's paths or ``PATH``."""
    server = shutil.which("mariadbd") or next(
        (p for p in ("/usr/sbin/mariadbd", "/usr/libexec/mariadbd") if Path(p).exists()), None
    )
    install = shutil.which("mariadb-install-db") or (
        "/usr/bin/mariadb-install-db" if Path("/usr/bin/mariadb-install-db").exists() else None
    )
    if server is None or install is None:
        raise MariadbUnavailable(
            "MariaDB server binaries (mariadbd, mariadb-install-db) not found in /usr/sbin, "
            "/usr/bin or PATH; install them with `make system-deps` (Debian's mariadb-server)"
        )
    return Path(server), Path(install)


@dataclass
class MariadbServer:
    server: Path
    root: Path
    port: int
    password: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"mysql+asyncmy://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls) -> MariadbServer:
        server_bin, install = find_binaries()
        root = Path(tempfile.mkdtemp(prefix="cadenza-mariadb-"))
        server = cls(server_bin, root, free_port(), secrets.token_urlsafe(24))
        try:
            server._install(install)
            server._start()
        except BaseException:
            server.stop()
            raise
        return server

    def _as_user(self) -> list[str]:
        return [f"--user={OS_USER}"] if os.geteuid() == 0 else []

    def _install(self, install: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, OS_USER, OS_USER)
        done = subprocess.run(
            [
                str(install),
                "--no-defaults",
                f"--datadir={self.data_dir}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
                *self._as_user(),
            ],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"mariadb-install-db failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )
        init = self.root / "init.sql"
        init.write_text(
            f"CREATE USER IF NOT EXISTS '{USER}'@'127.0.0.1' IDENTIFIED BY '{self.password}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1';\n"
        )
        init.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(init, OS_USER, OS_USER)

    def _start(self) -> None:
        log = self.root / "server.log"
        self.process = subprocess.Popen(
            [
                str(self.server),
                "--no-defaults",
                f"--datadir={self.data_dir}",
                f"--socket={self.root / 'mysqld.sock'}",
                f"--pid-file={self.root / 'mysqld.pid'}",
                f"--log-error={log}",
                f"--init-file={self.root / 'init.sql'}",
                "--bind-address=127.0.0.1",
                f"--port={self.port}",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-buffer-pool-size=128M",
                "--max-connections=300",
                f"--character-set-server={CHARSET}",
                f"--collation-server={COLLATION}",
                *self._as_user(),
            ],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            run_async(self._wait_ready)
        except BaseException:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"mariadbd did not start:\n{tail}") from None

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited ({self.process.returncode})")
            try:
                conn = await asyncmy.connect(
                    host="127.0.0.1",
                    port=self.port,
                    user=USER,
                    password=self.password,
                    connect_timeout=5,
                )
            except (OSError, MySQLError):  # not up yet (refused, or the init file not run)
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
                continue
            conn.close()
            return

    def halt(self) -> None:
        """A clean shutdown (SIGTERM): sessions are disconnected, committed data is kept."""
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=START_TIMEOUT_S)

    def resume(self) -> None:
        """Start again on the same port and data."""
        self._start()

    def stop(self) -> None:
        """Kill the server (the data is thrown away) and remove every file."""
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=START_TIMEOUT_S)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def create_database(server_url: str, name: str | None = None) -> str:
    """Create a database (utf8mb4, binary collation) on the server of ``server_url``; its URL."""
    name = name or f"t_{uuid.uuid4().hex[:16]}"
    parts = urlsplit(server_url)

    async def create() -> None:
        conn = await asyncmy.connect(
            host=parts.hostname,
            port=parts.port,
            user=parts.username,
            password=parts.password,
            connect_timeout=10,
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute(
                    f"CREATE DATABASE `{name}` CHARACTER SET {CHARSET} COLLATE {COLLATION}"
                )
        finally:
            conn.close()

    run_async(create)
    return urlunsplit(parts._replace(path=f"/{name}"))
