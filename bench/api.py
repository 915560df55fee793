"""The API benchmark (issue 4): instance starts over HTTP and SSE fan-out, one JSON line each.

    .venv/bin/python -m bench.api                                   # both workloads, 3 runs each
    .venv/bin/python -m bench.api --workload starts --starts 2000 --concurrency 64
    .venv/bin/python -m bench.api --workload fanout --subscribers 1000 --events-instances 20
    .venv/bin/python -m bench.api --profile /tmp/api-prof  # + one pyinstrument run, not counted

Every run starts a fresh ``cadenza serve`` in a subprocess (the server and this client never
share a process or a GIL) on a free loopback port, with a fresh temporary SQLite file (WAL,
synchronous=NORMAL: durable), rate limits raised out of the way, and the first admin's password
from ``CADENZA_ADMIN_PASSWORD``. The client (aiohttp, in this process) logs in, publishes a
one-node ``transform`` process and starts one warm-up instance before any clock runs. The server
gets SIGTERM and is waited for, and its directory removed, whatever happens. Progress goes to
stderr; stdout carries only the JSON lines, one per workload, with the medians over
``--repeat`` runs and every run under ``runs``:

api_starts     N POST /processes/instances with ``--concurrency`` requests in flight.
               ``starts_per_s`` = N / wall from the first send to the last 201;
               ``latency_p50_ms``/``latency_p99_ms`` of those POSTs (send to body read);
               ``completed_per_s`` = N / time from the first send until no instance is
               ``running`` (polled every 20 ms once the last POST returned, so the starts are
               not slowed by polling); ``completed`` is counted afterwards from the list API.
sse_fanout     S subscribers on GET /events/stream (one session, unlimited connector). When
               every one has its ``retry:`` line, K instances are started one by one,
               at most one per ``--spacing-ms`` (a slower POST delays the next; ``post_*``
               is the POST round trip). For each (subscriber, InstanceStarted) the latency is
               receipt time - the send time of the POST that started the instance.
               ``delivered`` must equal ``expected`` = S x K with no duplicates: the run fails
               otherwise. ``since_occurred_*`` measures receipt against the event's own
               ``occurred_at`` (same machine clock); ``fanout_span_p50_ms`` is, per instance, last
               receipt - first receipt over the S subscribers.

Memory and CPU are the server's (psutil on the child pid): ``server_peak_rss_mb`` is the
child's high-water mark (VmHWM, or the largest 100 ms sample where /proc is missing),
``server_rss_idle_mb`` its RSS after publishing, ``server_rss_connected_mb`` with S
subscribers connected; ``server_cpu_s`` and ``client_cpu_s`` are the CPU time of each process
inside the measured window (2 cores: their sum near 2 x wall means the machine is the bound).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.run import git_revision

ADMIN_PASSWORD = "bench-admin-password"
PROCESS_ID = "bench-api"
API = "/api/v1"
SERVER_ENV = {
    "CADENZA_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "CADENZA_HOST": "127.0.0.1",
    "CADENZA_RATE_LIMIT": "10000000/minute",
    "CADENZA_LOGIN_RATE_LIMIT": "10000/minute",
    "CADENZA_SHUTDOWN_GRACE_S": "2",
}
MB = 1024 * 1024


class BenchError(RuntimeError):
    """The run could not measure what it promised (a non-2xx answer, a lost event, a timeout)."""


def progress(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def document() -> dict[str, Any]:
    """One transform node echoing an input (the harness's ``document()``)."""
    return {
        "schema": "cadenza/v1",
        "id": PROCESS_ID,
        "name": "Bench API",
        "inputs": {"type": "object", "properties": {"name": {"type": "string"}}},
        "nodes": [
            {"id": "greet", "type": "transform", "config": {"output": "hello {{ inputs.name }}"}}
        ],
        "outputs": {"greeting": "{{ nodes.greet.output }}"},
    }


def raise_open_files(need: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to ``need`` (the server child inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < need:
        raise BenchError(f"open-files limit {soft} is below the {need} this run needs")
    return int(soft)


# ---- the server subprocess -----------------------------------------------------------------


@dataclass
class Server:
    base: str
    proc: asyncio.subprocess.Process
    ps: Any  # psutil.Process
    log: Path
    stop_signal: int = signal.SIGTERM
    samples: list[float] = field(default_factory=list)

    def rss_mb(self) -> float:
        return float(self.ps.memory_info().rss) / MB

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def peak_rss_mb(self) -> float:
        """VmHWM (the kernel's high-water mark) or, without /proc, the largest sample."""
        sampled = max(self.samples, default=0.0)
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return max(sampled, int(line.split()[1]) / 1024.0)
        return sampled

    async def sample_rss(self) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self.samples.append(self.rss_mb())
            await asyncio.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@contextlib.asynccontextmanager
async def serve(tmp: Path, profile: Path | None = None) -> AsyncIterator[Server]:
    """``cadenza serve`` in a subprocess on a free port; SIGTERM and wait on the way out."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
    env.update(SERVER_ENV)
    env["CADENZA_DATABASE_URL"] = f"sqlite:///{tmp}/api.db"
    env["CADENZA_PORT"] = str(port)
    cmd = [sys.executable, "-m", "cadenza", "serve"]
    if profile is not None:
        cmd = [sys.executable, "-m", "pyinstrument", "-i", "0.001", "-o", str(profile)]
        cmd += ["-m", "cadenza", "serve"]
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    server = Server(f"http://127.0.0.1:{port}", proc, psutil.Process(proc.pid), log)
    if profile is not None:  # uvicorn re-raises SIGTERM after shutdown: pyinstrument would
        server.stop_signal = signal.SIGINT  # die without writing; SIGINT ends in an exception
    sampler: asyncio.Task[None] | None = None
    try:
        await _wait_ready(server)
        sampler = asyncio.create_task(server.sample_rss())
        yield server
    finally:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        await _stop(server)


async def _wait_ready(server: Server, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if server.proc.returncode is not None:
                raise BenchError(f"cadenza serve exited early:\n{server.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(server.base + "/health") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise BenchError(f"cadenza serve not ready after {timeout_s:.0f}s:\n{server.log_tail()}")


async def _stop(server: Server) -> None:
    proc = server.proc
    if proc.returncode is None:
        proc.send_signal(server.stop_signal)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            progress("server did not stop within 30 s of the signal: killing it")
            proc.kill()
            await proc.wait()
    if proc.returncode not in (0, 1, 130, -signal.SIGTERM, -signal.SIGINT):
        progress(f"server exited with {proc.returncode}:\n{server.log_tail()}")


# ---- the client ----------------------------------------------------------------------------


async def _json(r: aiohttp.ClientResponse, expect: int, what: str) -> Any:
    body = await r.read()
    if r.status != expect:
        raise BenchError(f"{what}: HTTP {r.status}: {body[:500]!r}")
    return json.loads(body)


async def setup(session: aiohttp.ClientSession, base: str) -> dict[str, str]:
    """Log in, publish the process, run one warm-up instance; the auth headers."""
    login = {"username": "admin", "password": ADMIN_PASSWORD}
    async with session.post(f"{base}{API}/auth/login", json=login) as r:
        token = str((await _json(r, 200, "login"))["access_token"])
    headers = {"Authorization": f"Bearer {token}"}
    definition = {"document": document(), "publish": True}
    async with session.post(
        f"{base}{API}/processes/definitions", json=definition, headers=headers
    ) as r:
        if r.status not in (200, 201):
            raise BenchError(f"publish: HTTP {r.status}: {(await r.read())[:500]!r}")
    start = {"process_id": PROCESS_ID, "inputs": {"name": "warm-up"}}
    async with session.post(f"{base}{API}/processes/instances", json=start, headers=headers) as r:
        await _json(r, 201, "warm-up start")
    await wait_none_running(session, base, headers, timeout_s=30.0)
    return headers


async def wait_none_running(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], timeout_s: float
) -> None:
    url = f"{base}{API}/processes/instances"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with session.get(
            url, params={"status": "running", "limit": "1"}, headers=headers
        ) as r:
            if not (await _json(r, 200, "list running"))["items"]:
                return
        await asyncio.sleep(0.02)
    raise BenchError(f"instances still running after {timeout_s:.0f}s")


async def count_instances(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], status: str, ids: set[str]
) -> int:
    """How many of ``ids`` the list API shows with ``status`` (pages of 500)."""
    url, found, cursor = f"{base}{API}/processes/instances", 0, ""
    while True:
        params = {"status": status, "process_id": PROCESS_ID, "limit": "500"}
        if cursor:
            params["cursor"] = cursor
        async with session.get(url, params=params, headers=headers) as r:
            page = await _json(r, 200, f"list {status}")
        found += sum(1 for item in page["items"] if item["id"] in ids)
        cursor = page.get("next_cursor") or ""
        if not cursor:
            return found


def _connector() -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(limit=0, force_close=False)


# ---- api_starts ----------------------------------------------------------------------------


async def run_starts(n: int, concurrency: int, profile: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-api-") as tmp:
        async with (
            serve(Path(tmp), profile) as server,
            aiohttp.ClientSession(connector=_connector()) as session,
        ):
            headers = await setup(session, server.base)
            post_headers = {**headers, "Content-Type": "application/json"}
            rss_idle = server.rss_mb()
            url = f"{server.base}{API}/processes/instances"
            bodies = [
                json.dumps({"process_id": PROCESS_ID, "inputs": {"name": f"n{i}"}}).encode()
                for i in range(n)
            ]
            latencies = [0.0] * n
            ids = [""] * n
            todo = iter(range(n))

            async def worker() -> None:
                for i in todo:  # shared by the workers: next() never awaits
                    t0 = time.perf_counter()
                    async with session.post(url, data=bodies[i], headers=post_headers) as r:
                        body = await _json(r, 201, "start")
                    latencies[i] = time.perf_counter() - t0
                    ids[i] = str(body["id"])

            cpu0, client0 = server.cpu_s(), time.process_time()
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, n)))))
            started_s = time.perf_counter() - t0
            await wait_none_running(session, server.base, headers, timeout_s=600.0)
            completed_s = time.perf_counter() - t0
            server_cpu, client_cpu = server.cpu_s() - cpu0, time.process_time() - client0
            wanted = set(ids)
            completed = await count_instances(session, server.base, headers, "completed", wanted)
            failed = await count_instances(session, server.base, headers, "failed", wanted)
            peak = server.peak_rss_mb()
    ms = [x * 1000.0 for x in latencies]
    return {
        "starts": n,
        "concurrency": concurrency,
        "wall_s": round(started_s, 4),
        "starts_per_s": round(n / started_s, 1),
        "latency_p50_ms": round(percentile(ms, 50), 2),
        "latency_p99_ms": round(percentile(ms, 99), 2),
        "latency_max_ms": round(max(ms), 2),
        "completed_s": round(completed_s, 4),
        "completed_per_s": round(n / completed_s, 1),
        "completed": completed,
        "failed": failed,
        "distinct_ids": len(wanted),
        "server_cpu_s": round(server_cpu, 3),
        "client_cpu_s": round(client_cpu, 3),
        "server_rss_idle_mb": round(rss_idle, 1),
        "server_peak_rss_mb": round(peak, 1),
    }


# ---- sse_fanout ----------------------------------------------------------------------------


@dataclass
class Subscriber:
    """One SSE connection's receipts of InstanceStarted: (instance id, perf time, lag)."""

    got: list[tuple[str, float, float]] = field(default_factory=list)
    messages: int = 0  # every event message, of any type
    connected: bool = False


async def _subscribe(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    sub: Subscriber,
    on_connect: Callable[[], None],
    on_receipt: Callable[[Subscriber], None],
) -> None:
    async with session.get(url, headers=headers) as r:
        if r.status != 200:
            raise BenchError(f"subscribe: HTTP {r.status}: {(await r.read())[:500]!r}")
        started = False
        async for line in r.content:
            if line.startswith(b"event: "):
                started = line == b"event: InstanceStarted\n"
            elif line.startswith(b"data: "):
                sub.messages += 1
                if started:
                    now, wall = time.perf_counter(), time.time()
                    data = json.loads(line[6:])
                    sub.got.append((str(data["instance_id"]), now, wall - data["occurred_at"]))
                    on_receipt(sub)
                started = False
            elif line.startswith(b"retry:") and not sub.connected:
                sub.connected = True
                on_connect()
    raise BenchError("the server closed an SSE stream")


async def run_fanout(
    subscribers: int, instances: int, spacing_ms: float, profile: Path | None = None
) -> dict[str, Any]:
    raise_open_files(subscribers + 512)
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-api-") as tmp:
        async with (
            serve(Path(tmp), profile) as server,
            aiohttp.ClientSession(connector=_connector()) as control,
            aiohttp.ClientSession(
                connector=_connector(),
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=60),
            ) as streams,
        ):
            headers = await setup(control, server.base)
            rss_idle = server.rss_mb()
            subs = [Subscriber() for _ in range(subscribers)]
            connected, finished = asyncio.Event(), asyncio.Event()
            counts = {"connected": 0, "finished": 0}

            def on_connect() -> None:
                counts["connected"] += 1
                if counts["connected"] == subscribers:
                    connected.set()

            def on_receipt(sub: Subscriber) -> None:
                if len(sub.got) == instances:
                    counts["finished"] += 1
                    if counts["finished"] == subscribers:
                        finished.set()

            url = f"{server.base}{API}/events/stream"
            t_connect = time.perf_counter()
            tasks = [
                asyncio.create_task(_subscribe(streams, url, headers, sub, on_connect, on_receipt))
                for sub in subs
            ]
            try:
                await _until(connected, tasks, 120.0, "subscribers connecting")
                connect_s = time.perf_counter() - t_connect
                await asyncio.sleep(0.2)  # let the server settle its per-stream tasks
                rss_connected = server.rss_mb()
                progress(
                    f"sse_fanout: {subscribers} subscribers connected in {connect_s:.2f}s, "
                    f"server rss {rss_connected:.0f} MB"
                )
                sent: dict[str, float] = {}
                posts: list[float] = []
                start_url = f"{server.base}{API}/processes/instances"
                cpu0, client0 = server.cpu_s(), time.process_time()
                t0 = time.perf_counter()
                for j in range(instances):
                    slot = t0 + j * spacing_ms / 1000.0
                    await asyncio.sleep(max(0.0, slot - time.perf_counter()))
                    body = {"process_id": PROCESS_ID, "inputs": {"name": f"e{j}"}}
                    send = time.perf_counter()
                    async with control.post(start_url, json=body, headers=headers) as r:
                        sent[str((await _json(r, 201, "start"))["id"])] = send
                    posts.append((time.perf_counter() - send) * 1000.0)
                if instances:
                    await _until(finished, tasks, 60.0 + instances, "InstanceStarted deliveries")
                window_s = time.perf_counter() - t0
                server_cpu, client_cpu = server.cpu_s() - cpu0, time.process_time() - client0
                peak = server.peak_rss_mb()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    latencies: list[float] = []
    lags: list[float] = []
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    delivered = duplicates = foreign = 0
    for sub in subs:
        seen: set[str] = set()
        for iid, at, lag in sub.got:
            if iid not in sent:
                foreign += 1
                continue
            if iid in seen:
                duplicates += 1
                continue
            seen.add(iid)
            delivered += 1
            latencies.append((at - sent[iid]) * 1000.0)
            lags.append(lag * 1000.0)
            first[iid] = min(first.get(iid, at), at)
            last[iid] = max(last.get(iid, at), at)
    expected = subscribers * instances
    spans = [(last[i] - first[i]) * 1000.0 for i in first]
    result: dict[str, Any] = {
        "subscribers": subscribers,
        "instances": instances,
        "spacing_ms": spacing_ms,
        "expected": expected,
        "delivered": delivered,
        "lost": expected - delivered,
        "duplicates": duplicates,
        "foreign": foreign,
        "latency_p50_ms": round(percentile(latencies, 50), 2) if latencies else None,
        "latency_p99_ms": round(percentile(latencies, 99), 2) if latencies else None,
        "latency_max_ms": round(max(latencies), 2) if latencies else None,
        "since_occurred_p50_ms": round(percentile(lags, 50), 2) if lags else None,
        "since_occurred_p99_ms": round(percentile(lags, 99), 2) if lags else None,
        "fanout_span_p50_ms": round(percentile(spans, 50), 2) if spans else None,
        "post_p50_ms": round(percentile(posts, 50), 2) if posts else None,
        "post_max_ms": round(max(posts), 2) if posts else None,
        "messages": sum(sub.messages for sub in subs),
        "connect_s": round(connect_s, 3),
        "window_s": round(window_s, 3),
        "server_cpu_s": round(server_cpu, 3),
        "client_cpu_s": round(client_cpu, 3),
        "server_rss_idle_mb": round(rss_idle, 1),
        "server_rss_connected_mb": round(rss_connected, 1),
        "server_peak_rss_mb": round(peak, 1),
    }
    if result["lost"] or duplicates or foreign:
        raise BenchError(f"sse_fanout lost or duplicated events: {result}")
    return result


async def _until(
    event: asyncio.Event, tasks: list[asyncio.Task[None]], timeout_s: float, what: str
) -> None:
    """Wait for ``event``; a subscriber failing or the timeout ends the run."""
    waiter = asyncio.create_task(event.wait())
    try:
        pending: set[asyncio.Future[Any]] = {waiter, *tasks}
        deadline = time.monotonic() + timeout_s
        while not event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            done, pending = await asyncio.wait(
                pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not waiter:
                    task.result()  # raises the subscriber's error
                    raise BenchError(f"a subscriber ended while waiting for {what}")
    finally:
        waiter.cancel()


# ---- orchestration -------------------------------------------------------------------------

MEDIANS = {
    "api_starts": (
        "wall_s",
        "starts_per_s",
        "latency_p50_ms",
        "latency_p99_ms",
        "completed_s",
        "completed_per_s",
        "server_cpu_s",
        "client_cpu_s",
        "server_rss_idle_mb",
    ),
    "sse_fanout": (
        "latency_p50_ms",
        "latency_p99_ms",
        "since_occurred_p50_ms",
        "since_occurred_p99_ms",
        "fanout_span_p50_ms",
        "post_p50_ms",
        "connect_s",
        "server_cpu_s",
        "client_cpu_s",
        "server_rss_idle_mb",
        "server_rss_connected_mb",
    ),
}


def summarize(
    workload: str, params: dict[str, Any], runs: list[dict[str, Any]], argv: list[str]
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "workload": workload,
        "params": params,
        "command": " ".join(["python -m bench.api", *argv]).strip(),
        "database": "sqlite (fresh temporary file per run; WAL, synchronous=NORMAL)",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "git": git_revision(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "repeat": len(runs),
    }
    for key in MEDIANS[workload]:
        values = [float(r[key]) for r in runs if r.get(key) is not None]
        summary[key] = round(statistics.median(values), 3) if values else None
    summary["server_peak_rss_mb"] = max(float(r["server_peak_rss_mb"]) for r in runs)
    if workload == "api_starts":
        summary["all_completed"] = all(r["completed"] == r["starts"] for r in runs)
    else:
        summary["expected"] = sum(int(r["expected"]) for r in runs)
        summary["delivered"] = sum(int(r["delivered"]) for r in runs)
        summary["all_delivered"] = all(
            r["lost"] == 0 and r["duplicates"] == 0 and r["foreign"] == 0 for r in runs
        )
    summary["runs"] = runs
    return summary


def _describe(workload: str, r: dict[str, Any]) -> str:
    if workload == "api_starts":
        return (
            f"{r['starts_per_s']:.0f} starts/s, p50 {r['latency_p50_ms']:.1f} ms, "
            f"p99 {r['latency_p99_ms']:.1f} ms, {r['completed_per_s']:.0f} completed/s, "
            f"server peak rss {r['server_peak_rss_mb']:.0f} MB"
        )
    return (
        f"{r['delivered']}/{r['expected']} delivered, p50 {r['latency_p50_ms']} ms, "
        f"p99 {r['latency_p99_ms']} ms, server rss {r['server_rss_connected_mb']:.0f} MB "
        f"connected"
    )


async def run_once(
    workload: str, args: argparse.Namespace, profile: Path | None = None
) -> dict[str, Any]:
    load = round(os.getloadavg()[0], 2)  # other work on the machine, for reading the noise
    async with asyncio.timeout(args.timeout):
        if workload == "api_starts":
            r = await run_starts(args.starts, args.concurrency, profile)
        else:
            r = await run_fanout(args.subscribers, args.events_instances, args.spacing_ms, profile)
    return {**r, "load_1m_before": load}


def plan(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if args.workload in ("starts", "all"):
        out.append(("api_starts", {"starts": args.starts, "concurrency": args.concurrency}))
    if args.workload in ("fanout", "all"):
        params = {
            "subscribers": args.subscribers,
            "events_instances": args.events_instances,
            "spacing_ms": args.spacing_ms,
        }
        out.append(("sse_fanout", params))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n")[0])
    p.add_argument("--workload", choices=("starts", "fanout", "all"), default="all")
    p.add_argument("--starts", type=int, default=1000, help="api_starts: instances started")
    p.add_argument("--concurrency", type=int, default=32, help="api_starts: POSTs in flight")
    p.add_argument("--subscribers", type=int, default=1000, help="sse_fanout: SSE connections")
    p.add_argument("--events-instances", type=int, default=20, help="sse_fanout: instances started")
    p.add_argument("--spacing-ms", type=float, default=50.0, help="sse_fanout: between starts")
    p.add_argument("--repeat", type=int, default=3, help="runs per workload (medians reported)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    p.add_argument(
        "--profile", default=None, help="one more run per workload, the server under pyinstrument"
    )
    args = p.parse_args(argv)
    for name in ("starts", "concurrency", "subscribers", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.events_instances < 0 or args.spacing_ms < 0:
        p.error("--events-instances and --spacing-ms cannot be negative")
    return args


async def amain(argv: list[str]) -> int:
    args = parse_args(argv)
    failed = False
    for workload, params in plan(args):
        runs: list[dict[str, Any]] = []
        for i in range(max(1, args.repeat)):
            r = await run_once(workload, args)
            progress(f"{workload} {params} run {i + 1}/{args.repeat}: {_describe(workload, r)}")
            runs.append(r)
        summary = summarize(workload, params, runs, argv)
        failed |= not summary.get("all_completed", summary.get("all_delivered", False))
        print(json.dumps(summary), flush=True)
        if args.profile:  # an extra run: the sampling overhead stays out of the figures
            out = Path(args.profile)
            r = await run_once(workload, args, out / f"{workload}.txt")
            progress(
                f"profiled run (not counted) -> {out / workload}.txt: {_describe(workload, r)}"
            )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    profile = parse_args(argv).profile
    if profile:
        Path(profile).mkdir(parents=True, exist_ok=True)
    raise SystemExit(asyncio.run(amain(argv)))


if __name__ == "__main__":
    main()
