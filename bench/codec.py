"""Cost of the payload codec on the SQLite commit path, without the engine around it.

The whole benchmarks (``bench.run --workload w1seq``) cannot resolve a 1 % change on a shared
machine; this times only ``sqlite_writer.statements``, the function that turns one batch's
``Changes`` into SQL parameters, where the codec runs (docs/payloads.md). It records the
batches a real engine commits for ``--instances`` w1seq instances (``--nodes`` no-op
transforms each, run one after another on a SQLite file), then times ``statements`` over
all of them with three writers, interleaved round by round:

    no_encoding       ``RowEncoder`` replaced by one that returns the rows as they are: the
                      writer before the codec existed
    codec_plain       the codec without stages: the escape check only
    codec_blob_stage  the codec with the blob stage at ``--threshold`` bytes (64 KiB, the
                      default): the size check too; nothing here is near it, so nothing is
                      offloaded (checked: no batch has a blob write pending)

Each figure is the best of ``--repeat`` timings of ``--number`` passes over the batches,
per instance, in microseconds of the thread's CPU time (``time.thread_time``: steady on a
loaded machine, where wall-clock timings count other processes' turns). One JSON object on
stdout:

    PYTHONPATH=src python -m bench.codec
    PYTHONPATH=src python -m bench.codec --instances 100 --nodes 10 --number 10 --repeat 25
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from bench.run import git_revision
from bench.workloads import Finishes, w1_document
from cadenza.application.payload_blobs import DEFAULT_THRESHOLD, BlobStage
from cadenza.application.payloads import PLAIN, EncodeBatch, PayloadCodec
from cadenza.application.ports import Changes
from cadenza.bootstrap import build
from cadenza.domain.commands import StartInstance
from cadenza.infrastructure.blobs.files import FileBlobStore
from cadenza.infrastructure.sql import sqlite_tx, sqlite_writer
from cadenza.infrastructure.sql.payload_rows import RowEncoder
from cadenza.settings import Settings

Statements = Callable[[Changes, PayloadCodec], tuple[list[Any], EncodeBatch]]


class Unencoded(RowEncoder):
    """The rows as they are: what the writer did before the codec."""

    def instance(self, values: dict[str, object]) -> dict[str, object]:
        return values

    def task(self, values: dict[str, object]) -> dict[str, object]:
        return values

    def event(self, values: dict[str, object]) -> dict[str, object]:
        return values


async def record(instances: int, nodes: int) -> list[Changes]:
    """The ``Changes`` of every batch the engine commits while running ``instances`` w1seq
    instances one after another on a fresh SQLite file."""
    seen: list[Changes] = []
    writer: Statements = sqlite_writer.statements

    def recording(changes: Changes, codec: PayloadCodec = PLAIN) -> Any:
        seen.append(changes)
        return writer(changes, codec)

    with tempfile.TemporaryDirectory(prefix="cadenza-bench-codec-") as tmp:
        rt = await build(Settings(database_url=f"sqlite:///{tmp}/codec.db", worker_id="bench"))
        try:
            stored = await rt.definitions.publish(w1_document(nodes))
            rt.definitions.plan_for(stored)
            finishes = Finishes()
            rt.engine.subscribe(finishes)
            await rt.engine.start()
            start = StartInstance(
                stored.process_id, {}, version=stored.version, inputs_checked=True
            )
            with mock.patch.object(sqlite_tx, "statements", recording):
                for _ in range(instances):
                    iid = await rt.engine.submit(start)
                    assert isinstance(iid, str)
                    if await finishes.wait(iid) != "InstanceCompleted":
                        raise SystemExit(f"instance {iid} did not complete")
        finally:
            await rt.close()
    return seen


def _timed(batches: list[Changes], codec: PayloadCodec, number: int, repeat: int) -> float:
    """Best seconds of one pass of ``statements`` over ``batches``."""

    def one_pass() -> None:
        for changes in batches:
            sqlite_writer.statements(changes, codec)

    # the thread's CPU time, not the wall clock: on a shared machine a timing the scheduler
    # interrupts would otherwise count the other processes' time
    timings = timeit.repeat(one_pass, number=number, repeat=repeat, timer=time.thread_time)
    return min(timings) / number


def measure(
    batches: list[Changes], codecs: dict[str, PayloadCodec], number: int, repeat: int, rounds: int
) -> dict[str, float]:
    """Best seconds per pass of each writer; the writers alternate within every round, so a
    change of the machine's load falls on all of them."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        with mock.patch.object(sqlite_writer, "RowEncoder", Unencoded):
            t = _timed(batches, PLAIN, number, repeat)
        best["no_encoding"] = min(t, best.get("no_encoding", t))
        for name, codec in codecs.items():
            t = _timed(batches, codec, number, repeat)
            best[name] = min(t, best.get(name, t))
    return best


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.codec", description=__doc__.split("\n")[0])
    p.add_argument("--instances", type=int, default=100, help="w1seq instances recorded")
    p.add_argument("--nodes", type=int, default=10, help="no-op transforms per instance")
    p.add_argument("--number", type=int, default=10, help="passes over the batches per timing")
    p.add_argument("--repeat", type=int, default=25, help="timings per round; the best counts")
    p.add_argument("--rounds", type=int, default=2, help="rounds of the three writers")
    p.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD, help="blob stage bytes")
    args = p.parse_args(argv)
    load_before = _loadavg()
    batches = asyncio.run(record(args.instances, args.nodes))
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-blobs-") as blobs:
        codecs = {
            "codec_plain": PayloadCodec(),
            "codec_blob_stage": PayloadCodec([BlobStage(FileBlobStore(blobs), args.threshold)]),
        }
        for changes in batches:  # the stage only measures: nothing is offloaded
            if sqlite_writer.statements(changes, codecs["codec_blob_stage"])[1].pending:
                raise SystemExit("a value was offloaded: the timing would include blob writes")
        best = measure(batches, codecs, args.number, args.repeat, args.rounds)
    per_instance = {k: round(v / args.instances * 1e6, 1) for k, v in best.items()}
    rows = sum(
        len(c.new_instances) + len(c.updated_instances) + len(c.new_tasks) + len(c.updated_tasks)
        for c in batches
    )
    out = {
        "workload": "codec",
        "params": vars(args),
        "batches": len(batches),
        "rows": rows,
        "events": sum(len(c.events) for c in batches),
        "us_per_instance": per_instance,
        "codec_us_per_instance": round(
            per_instance["codec_blob_stage"] - per_instance["no_encoding"], 1
        ),
        "python": platform.python_version(),
        "git": git_revision(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_before": load_before,
        "loadavg_after": _loadavg(),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
