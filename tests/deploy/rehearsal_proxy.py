"""The Compose file's HAProxy, run natively in front of the rehearsal's API processes: the same
``proxy/haproxy.cfg`` with only its addresses rewritten (``bind :8080`` -> a free loopback port,
``server cadenza-api-1 cadenza-api-1:8080`` -> that process's loopback port). Needs the
``haproxy`` binary (Debian's, ``make system-deps``); stopped with SIGUSR1, the official image's
STOPSIGNAL (a soft stop: open connections finish)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from tests.deploy.compose_model import COMPOSE_DIR, Service
from tests.deploy.rehearsal import READY_TIMEOUT_S, Rehearsal
from tests.net import free_port


def find_haproxy() -> str | None:
    """The haproxy binary; None when it is missing (an error on CI)."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if found is None and os.environ.get("CI"):
        raise AssertionError("haproxy not installed: make system-deps")
    return found


def loopback_config(text: str, upstreams: Mapping[str, str], binds: Mapping[str, str]) -> str:
    """``text`` with each ``server`` address and ``bind`` address replaced; an address with no
    replacement fails (the config names a service the rehearsal does not run)."""
    out: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] == ["server"]:
            assert words[2] in upstreams, f"no rehearsed process for {words[2]}"
            line = line.replace(f" {words[2]}", f" {upstreams[words[2]]}", 1)
        elif words[:1] == ["bind"]:
            line = line.replace(f" {words[1]}", f" {binds[words[1]]}", 1)
        out.append(line)
    return "\n".join(out) + "\n"


async def _ok(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url) as r:
            return r.status == 200
    except (aiohttp.ClientError, OSError):
        return False


class LoopbackProxy:
    """``async with LoopbackProxy(doc, rehearsal, haproxy, root) as proxy``: ``proxy.url``
    reaches the APIs through HAProxy; on leaving, SIGUSR1 and the exit code in ``exit_code``."""

    def __init__(
        self, doc: Mapping[str, Any], rehearsal: Rehearsal, haproxy: str, root: Path
    ) -> None:
        (name,) = [n for n, s in doc["services"].items() if str(s["image"]).startswith("haproxy:")]
        self.service = name
        self.stop_grace_s = Service(name, doc["services"][name]).stop_grace_s
        volume = next(v for v in doc["services"][name]["volumes"] if "haproxy.cfg" in v)
        self.source = (COMPOSE_DIR / volume.split(":")[0]).resolve()
        upstreams = {
            f"{p.service.name}:{p.service.port}": f"127.0.0.1:{p.port}" for p in rehearsal.servers()
        }
        self.port, health_port = free_port(), free_port()
        binds = {":8080": f"127.0.0.1:{self.port}", ":8404": f"127.0.0.1:{health_port}"}
        self.config = root / "haproxy.cfg"
        self.config.write_text(loopback_config(self.source.read_text(), upstreams, binds))
        self.health = f"http://127.0.0.1:{health_port}/healthz"
        self.haproxy = haproxy
        self.log = root / "logs" / "proxy.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.exit_code: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> LoopbackProxy:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                self.haproxy, "-db", "-f", str(self.config),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_S
        # a session of its own, closed after: no idle connection holds the soft stop
        async with aiohttp.ClientSession() as session:
            # healthy (the compose healthcheck's URL), and the APIs behind it answer
            for url in (self.health, self.url + "/health/readiness"):
                while not await _ok(session, url):
                    assert self.proc.returncode is None, self.log.read_text()
                    assert time.monotonic() < deadline, f"{url} not ready:\n{self.log.read_text()}"
                    await asyncio.sleep(0.05)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGUSR1)
            try:
                await asyncio.wait_for(self.proc.wait(), self.stop_grace_s)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.exit_code = self.proc.returncode
