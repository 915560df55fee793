"""``cadenza audit`` against a running API: a table by default, JSON lines with ``--jsonl``,
filters passed through, ``--since`` relative or absolute."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import typer
from tests.api.harness import ADMIN_PASSWORD, Server, document, serve

from cadenza.entrypoints.cli_audit import since_iso


async def cadenza(srv: Server, home: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    env = {
        **{k: os.environ[k] for k in ("PYTHONPATH", "PATH") if k in os.environ},
        "XDG_CONFIG_HOME": str(home),
        "CADENZA_SERVER": srv.base,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cadenza",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 120)
    return int(proc.returncode or 0), out.decode(), err.decode()


@pytest.mark.asyncio
async def test_audit_lists_rows_as_a_table_or_json_lines(tmp_path: Path) -> None:
    async with serve(f"sqlite:///{tmp_path / 'cli.db'}") as srv:
        body = {"document": document("cli-audited"), "publish": True}
        assert (await srv.admin.post("/api/v1/processes/definitions", body)).status == 201
        code, _, err = await cadenza(
            srv, tmp_path, "login", "--password-stdin", stdin=ADMIN_PASSWORD + "\n"
        )
        assert code == 0, err
        code, out, err = await cadenza(
            srv, tmp_path, "audit", "--action", "definition.", "--since", "1h", "--jsonl"
        )
        assert code == 0, err
        rows = [json.loads(line) for line in out.splitlines()]
        assert [(r["action"], r["target_id"]) for r in rows] == [
            ("definition.publish", "cli-audited@1"),
            ("definition.save", "cli-audited"),
        ]
        code, out, err = await cadenza(srv, tmp_path, "audit", "--action", "auth.login")
        assert code == 0, err
        lines = out.splitlines()
        assert len(lines) == 2  # the harness's sign-in and the CLI's
        assert all(" auth.login " in line and "user:" in line for line in lines)


def test_since_takes_a_duration_or_a_time() -> None:
    assert since_iso("90m", 7200.0) == "1970-01-01T00:30:00+00:00"
    assert since_iso("2026-01-02T03:04:05+00:00", 0.0) == "2026-01-02T03:04:05+00:00"
    with pytest.raises(typer.BadParameter, match="30m, 12h, 7d"):
        since_iso("yesterday", 0.0)
