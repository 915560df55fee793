"""A throwaway Redis server for one test session, on loopback, with nothing written to disk.

``redis-server`` comes from Debian (``make system-deps``) or ``PATH``. It runs in a temporary
directory with persistence off (``--save "" --appendonly no``) and a random password.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.net import free_port

START_TIMEOUT_S = 30


class RedisUnavailable(Exception):
    """No ``redis-server`` binary on this machine."""


def _ping(port: int, password: str) -> bool:
    """One PING over a raw socket (RESP), so that starting needs no event loop."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            while b"PONG" not in reply and len(reply) < 200:
                chunk = conn.recv(200)
                if not chunk:
                    break
                reply += chunk
            return b"PONG" in reply
    except OSError:
        return False


def _spawn(binary: str, root: Path, port: int, password: str) -> subprocess.Popen[bytes]:
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(root),
        "--save",
        "",
        "--appendonly",
        "no",
        "--requirepass",
        password,
        "--logfile",
        str(root / "server.log"),
    ]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclass
class RedisServer:
    root: Path
    port: int
    password: str
    process: subprocess.Popen[bytes]

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    @classmethod
    def start(cls) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable(
                "redis-server not found in PATH; install it with `make system-deps`"
            )
        root = Path(tempfile.mkdtemp(prefix="cadenza-redis-"))
        port, password = free_port(), secrets.token_urlsafe(24)
        server = cls(root, port, password, _spawn(binary, root, port, password))
        try:
            server._wait_ready(root / "server.log")
        except BaseException:
            server.stop()
            raise
        return server

    def halt(self) -> None:
        """Stop the server, keeping its port and password for ``resume`` (a restart)."""
        self.process.terminate()
        self.process.wait(timeout=10)

    def resume(self) -> None:
        """Start the server again on the same port with the same password (and no data:
        nothing persists), and wait until it answers."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable("redis-server is gone from PATH")
        self.process = _spawn(binary, self.root, self.port, self.password)
        self._wait_ready(self.root / "server.log")

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log.read_text()[-3000:] if log.exists() else ""
                raise RuntimeError(f"redis-server exited ({self.process.returncode}):\n{tail}")
            if _ping(self.port, self.password):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} never answered PING")

    def stop(self) -> None:
        """Stop the server (nothing to save) and remove its directory."""
        try:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
