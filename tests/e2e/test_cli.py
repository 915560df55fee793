"""The CLI as a user runs it: real subprocesses, real SQLite files, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def cadenza(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cadenza", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "CADENZA_DATABASE_URL": f"sqlite:///{db}",
            "HOME": str(db.parent),
        },
        cwd=db.parent,
        check=False,
    )


def test_run_prints_outputs_and_exits_zero(tmp_path: Path) -> None:
    r = cadenza(
        "run",
        str(EXAMPLES / "fanout.yaml"),
        "-i",
        "ticket=Error on save",
        "-i",
        'tags=["x"]',
        db=tmp_path / "c.db",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"label": "bug", "summary": "Error on save -> engineering [X-0]"}
    assert "nodes done" in r.stderr  # the progress table is shown on stderr


def test_run_with_subprocess_include(tmp_path: Path) -> None:
    r = cadenza(
        "run",
        str(EXAMPLES / "orders.yaml"),
        "--include",
        str(EXAMPLES / "enrich-child.yaml"),
        "-i",
        'orders=[{"id": 7, "qty": 3, "price": 50}]',
        "-q",
        db=tmp_path / "c.db",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["vip_count"] == 1


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    r = cadenza("run", str(tmp_path / "nope.yaml"), db=tmp_path / "c.db")
    assert r.returncode == 2
    assert "no such file" in r.stderr


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: cadenza/v1\nnodes: [\n  - id: a\n")
    r = cadenza("validate", str(bad), db=tmp_path / "c.db")
    assert r.returncode == 2
    assert "bad.yaml:" in r.stderr
    assert "invalid YAML" in r.stderr


def test_invalid_definition_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "schema: cadenza/v1\nid: x\nname: x\nnodes:\n"
        "  - {id: a, type: teleport}\n  - {id: b, type: wait, config: {duration: soon}}\n"
        "edges:\n  - {from: a, to: ghost}\n"
    )
    r = cadenza("validate", str(bad), db=tmp_path / "c.db")
    assert r.returncode == 2
    assert "3 problem(s)" in r.stderr
    assert "$.nodes[0].type" in r.stderr
    assert "$.nodes[1].config.duration" in r.stderr
    assert "$.edges[0].to" in r.stderr


def test_inputs_not_matching_schema_are_refused(tmp_path: Path) -> None:
    r = cadenza("run", str(EXAMPLES / "fanout.yaml"), "-i", "tags=3", db=tmp_path / "c.db")
    assert r.returncode == 2
    assert "inputs do not match" in r.stderr
    assert "ticket" in r.stderr


def test_validate_accepts_every_example(tmp_path: Path) -> None:
    for example in sorted(EXAMPLES.glob("*.yaml")):
        r = cadenza("validate", str(example), db=tmp_path / "c.db")
        assert r.returncode == 0, (example, r.stderr)
        assert "valid" in r.stdout
