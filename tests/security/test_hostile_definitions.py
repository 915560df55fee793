"""Every hostile definition ends in a clear error: no traceback, no hang, never accepted.

Each case goes through the same reader and validator as ``cadenza validate`` (in-process);
a handful also run through the real CLI in a subprocess. The per-test timeout turns a hang
into a failure instead of a stuck run (the bound is generous: each case takes milliseconds).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.checks import RealChecks
from tests.security.hostile_definitions import Case, corpus

from cadenza.domain.errors import DefinitionInvalid
from cadenza.domain.limits import Limits
from cadenza.domain.validation import parse_definition
from cadenza.infrastructure.documents import DocumentError, read_document

CASES = corpus()
LONGEST_LINE = 1_000  # characters of one message line; values longer than that are cut
CLI_CASES = {
    "encoding-latin1-yaml",
    "nesting-json-arrays-10000",
    "nesting-yaml-flow-10000",
    "aliases-billion-laughs-9",
    "duplicates-two-nodes",
    "long-values-process-id",
    "input-schema-remote-ref-http",
    "input-schema-type-nonsense",
    "size-8000-nodes",
}


CHECKS = RealChecks()


def _write(tmp_path: Path, case: Case) -> Path:
    path = tmp_path / f"case{case.suffix}"
    path.write_bytes(case.data)
    return path


def _assert_clear(message: str) -> None:
    assert "Traceback" not in message
    assert message.strip()
    longest = max(len(line) for line in message.splitlines())
    assert longest <= LONGEST_LINE, f"a message line of {longest} characters"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_definition_gets_a_clear_error(tmp_path: Path, case: Case) -> None:
    path = _write(tmp_path, case)
    with pytest.raises((DocumentError, DefinitionInvalid)) as caught:
        parse_definition(read_document(path), CHECKS, Limits())
    if isinstance(caught.value, DefinitionInvalid):
        assert caught.value.problems
    _assert_clear(str(caught.value))


def test_the_corpus_covers_every_class_with_60_documents_or_more() -> None:
    classes = {c.cls for c in CASES}
    assert classes == {
        "encoding",
        "nesting",
        "aliases",
        "duplicates",
        "long-values",
        "input-schema",
        "size",
        "shape",
    }
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cadenza_validate_cli_refuses_hostile_files_without_traceback(
    tmp_path: Path, name: str
) -> None:
    case = next(c for c in CASES if c.id == name)
    path = _write(tmp_path, case)
    env = {**os.environ, "CADENZA_LOG_JSON": "false"}
    done = subprocess.run(
        [sys.executable, "-m", "cadenza", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=100,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "error:" in done.stderr
    assert done.stdout == ""
