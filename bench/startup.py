"""Start-up time of the ``cadenza`` commands, from exec until the process is ready (issue 10).

    .venv/bin/python -m bench.startup --repeat 5
    .venv/bin/python -m bench.startup --target worker --repeat 10 --include-migrations

Each run spawns a fresh process (``python -m cadenza ...``, what the ``cadenza`` script runs)
against a fresh SQLite file in a temporary directory; by default the schema is created
(``cadenza db upgrade``) before the clock starts, so the figure is a *restart* against an
existing database, the recovery time of a crashed worker. ``--include-migrations`` leaves the
file empty so the process creates the schema inside the window. Ready means:

    worker   its stderr line ``worker <id> running on <url>`` (printed once the engine runs)
    api      ``cadenza serve --role api``: GET /health/readiness answers 200
    help     ``cadenza --help`` exits (status 0)

The ready process is then stopped with SIGTERM (outside the clock). stdout carries one JSON
object per target: the median, min and max of ``ready_s`` over the runs, and every run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).parent.parent
TARGETS = ("worker", "api", "help")
GOAL_S = 1.0  # issue 10 scope 1a: `cadenza worker` ready within one second of exec
READY_TIMEOUT_S = 60.0
POLL_S = 0.005  # between readiness probes of the API (a benchmark may poll; tests may not)


def _cadenza(*args: str) -> list[str]:
    return [sys.executable, "-m", "cadenza", *args]


def _env(tmp: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CADENZA_ADMIN_PASSWORD="bench-startup-password",
        CADENZA_TOKEN_SECRET="bench-startup-token-secret-" + "x" * 32,
        HOME=tmp,  # no user cadenza.toml or token file leaks in
    )
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _time_worker(url: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        _cadenza("worker", "--database-url", url), stderr=subprocess.PIPE, env=env, cwd=ROOT
    )
    assert proc.stderr is not None
    try:
        for raw in proc.stderr:
            if raw.startswith(b"worker ") and b" running on " in raw:
                return time.perf_counter() - t0
        raise SystemExit(f"worker exited ({proc.wait()}) before it was ready")
    finally:
        _stop(proc)


def _time_api(url: str, env: dict[str, str]) -> float:
    port = _free_port()
    probe = f"http://127.0.0.1:{port}/health/readiness"
    cmd = _cadenza("serve", "--role", "api", "--port", str(port), "--database-url", url)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    try:
        while time.perf_counter() - t0 < READY_TIMEOUT_S:
            if proc.poll() is not None:
                raise SystemExit(f"serve exited ({proc.returncode}) before it was ready")
            try:
                with urllib.request.urlopen(probe, timeout=5) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - t0
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(POLL_S)
        raise SystemExit("serve was not ready in time")
    finally:
        _stop(proc)


def _time_help(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(_cadenza("--help"), check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def time_once(target: str, include_migrations: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="cadenza-startup-") as tmp:
        env = _env(tmp)
        url = f"sqlite:///{tmp}/startup.db"
        if target != "help" and not include_migrations:
            subprocess.run(
                _cadenza("db", "upgrade", "--database-url", url),
                check=True,
                capture_output=True,
                env=env,
                cwd=ROOT,
            )
        if target == "worker":
            return _time_worker(url, env)
        if target == "api":
            return _time_api(url, env)
        return _time_help(env)


def summarize(target: str, runs: list[float], include_migrations: bool) -> dict[str, object]:
    median = statistics.median(runs)
    out: dict[str, object] = {
        "target": target,
        "ready_s": round(median, 3),
        "ready_s_min": round(min(runs), 3),
        "ready_s_max": round(max(runs), 3),
        "ready_s_runs": [round(r, 3) for r in runs],
        "repeat": len(runs),
        "migrations_in_window": include_migrations,
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if target == "worker":
        out["goal_s"] = {"ready_s_max": GOAL_S, "met": median <= GOAL_S}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n")[0])
    p.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    p.add_argument("--repeat", type=int, default=5, help="runs per target; ready_s is the median")
    p.add_argument(
        "--include-migrations",
        action="store_true",
        help="leave the database empty: creating the schema counts (worker and api)",
    )
    args = p.parse_args(argv)
    for target in TARGETS if args.target == "all" else (args.target,):
        runs = []
        for i in range(max(1, args.repeat)):
            runs.append(time_once(target, args.include_migrations))
            print(f"# {target} run {i + 1}: {runs[-1]:.3f}s", file=sys.stderr, flush=True)
        print(json.dumps(summarize(target, runs, args.include_migrations)), flush=True)


if __name__ == "__main__":
    main()
