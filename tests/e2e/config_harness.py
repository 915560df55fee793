"""What the tests of runtime configuration across real processes share: the processes'
environment, starting one with its log in a file, waiting on a condition with a deadline
(never a sleep), the API calls and the bus's consumer groups."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from cadenza.infrastructure.secrets_crypto import new_key

DEADLINE_S = 120.0  # importing and starting on a loaded machine
PASSWORD = "config-admin-password-1"


def env(tmp: Path, url: str, bus_url: str) -> dict[str, str]:
    inherited = {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}
    return {
        **inherited,
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        "CADENZA_DATABASE_URL": url,
        "CADENZA_BUS_URL": bus_url,
        "CADENZA_ADMIN_PASSWORD": PASSWORD,
        "CADENZA_TOKEN_SECRET": "config-token-secret-" + "c" * 32,
        "CADENZA_SECRETS_KEY": new_key(),
        "CADENZA_CONFIG_ALLOWED_HOSTS": '["127.0.0.1"]',
        "CADENZA_CACHE_REFRESH_S": "3600",  # only the bus can tell the worker in time
        "CADENZA_SHUTDOWN_GRACE_S": "0",
        "CADENZA_SWEEP_INTERVAL_S": "0.2",
    }


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cadenza", *argv],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


async def until(what: str, probe: Callable[[], Any], log: Path) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = probe()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        tail = log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S:g} s\n{tail}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def api(session: aiohttp.ClientSession, base: str) -> AsyncIterator[dict[str, str]]:
    body = {"username": "admin", "password": PASSWORD}
    async with session.post(f"{base}/api/v1/auth/login", json=body) as r:
        assert r.status == 200, await r.text()
        token = (await r.json())["access_token"]
    yield {"Authorization": f"Bearer {token}"}


async def call(
    session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    async with session.request(method, url, json=body, headers=headers) as r:
        text = await r.text()
        return r.status, json.loads(text) if text else None


async def followers(bus_url: str, prefix: str = "cache-", count: int = 2) -> bool:
    """Whether ``count`` processes' groups named ``prefix...`` are on the bus's stream
    (the invalidation followers: ``cache-...``; the MCP proxy's: ``mcp-proxy-...``)."""
    import redis.asyncio as aioredis

    base, _, query = bus_url.partition("?")
    stream = dict(p.split("=", 1) for p in query.split("&"))["stream"]
    client = aioredis.from_url(base)
    try:
        groups = await client.xinfo_groups(stream)
    except aioredis.ResponseError:  # no stream yet: nobody joined
        return False
    finally:
        await client.aclose()
    names = [g["name"].decode() if isinstance(g["name"], bytes) else str(g["name"]) for g in groups]
    return sum(n.startswith(prefix) for n in names) >= count


def count(log: Path, line: str) -> int:
    return log.read_text(errors="replace").count(line)


async def run(
    http: aiohttp.ClientSession,
    base: str,
    auth: dict[str, str],
    log: Path,
    process_id: str,
    inputs: dict[str, Any],
    expected: str,
) -> dict[str, Any]:
    """Start an instance and wait until it settles with ``expected``."""
    body = {"process_id": process_id, "inputs": inputs}
    status, started = await call(http, "POST", f"{base}/api/v1/processes/instances", auth, body)
    assert status == 201, started
    url = f"{base}/api/v1/processes/instances/{started['id']}"

    async def done() -> dict[str, Any] | None:
        _, got = await call(http, "GET", url, auth)
        return got if got["status"] in ("completed", "failed") else None

    found: dict[str, Any] = await until(f"instance of {process_id}", done, log)
    assert found["status"] == expected, found
    return found


async def answers(
    http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes], log: Path
) -> None:
    """Wait until ``url`` answers 200 (a process's ``/health``); fails if the process died."""

    async def up() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            async with http.get(url) as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await until(f"{url} answers", up, log)


async def publish(
    http: aiohttp.ClientSession, base: str, auth: dict[str, str], doc: dict[str, Any]
) -> None:
    status, body = await call(
        http,
        "POST",
        f"{base}/api/v1/processes/definitions",
        auth,
        {"document": doc, "publish": True},
    )
    assert status == 201, body
