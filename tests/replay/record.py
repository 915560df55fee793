"""Record journals of the examples for the replay tests (``tests/unit/test_replay.py``).

Run it by hand, from the repository root, when an example is added or on purpose changed:

    .venv/bin/python tests/replay/record.py            # every example in examples/*.yaml
    .venv/bin/python tests/replay/record.py fanout     # only examples/fanout.yaml
    .venv/bin/python tests/replay/record.py fanout-pure  # only that run (its file name)

Each example runs through the real engine (bootstrap, SQLite in a temporary directory, the local
worker) with the inputs listed in ``RUNS`` (``{}`` for an example not listed; a run may first
publish the examples it calls as subprocesses). Every run that finishes on its own within
``TIMEOUT_S`` is written to ``tests/replay/<name>.json``:

    {"definition": <document>, "inputs": {...}, "instance_id": "...",
     "journal": [{"seq", "type", "event_id", "occurred_at", "data"}, ...],
     "expected": {"status", "outputs",
                  "tasks": {"<scope>|<node_id>": {"status", "output", "attempt"}}}}

``expected`` is read from the instance and task rows the engine materialized, not from a replay,
so the test compares two independent views. A run that waits for a human (an approval without a
timeout) or fails to publish is reported and skipped. Existing files are overwritten: recorded
journals are the compatibility contract, so re-record only when old journals may change.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cadenza.bootstrap import build
from cadenza.domain.commands import StartInstance
from cadenza.domain.instance import Instance
from cadenza.domain.json import JSON, JSONObject
from cadenza.infrastructure.documents import read_document
from cadenza.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
OUT = Path(__file__).resolve().parent
TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Run:
    file_name: str  # tests/replay/<file_name>.json
    inputs: JSONObject
    includes: tuple[str, ...] = ()  # stems of examples to publish first (subprocesses)


# example stem -> its runs; an example not listed runs once with {} as inputs.
RUNS: dict[str, list[Run]] = {
    "fanout": [
        Run("fanout", {"ticket": "Error on login", "tags": ["auth", "web"]}),
        Run("fanout-other", {"ticket": "Please add dark mode"}),
        # recorded after pure nodes (transform, condition) ran inside the decision step: the
        # chain start -> classify -> route -> ... -> end journaled step by step, one commit
        Run("fanout-pure", {"ticket": "Error on login", "tags": ["auth", "web"]}),
    ],
    # nobody decides: the 2s approval timeout fails the node, on_error: continue goes on
    "approval": [Run("approval-timeout", {"amount": 42, "customer": "ada"})],
    "enrich-child": [Run("enrich-child", {"order": {"id": "o-1", "qty": 3, "price": 50}})],
    "orders": [
        Run(
            "orders",
            {
                "orders": [
                    {"id": "o-1", "qty": 3, "price": 50},
                    {"id": "o-2", "qty": 1, "price": 20},
                    {"id": "o-3", "qty": 10, "price": 15},
                ]
            },
            includes=("enrich-child",),
        ),
        # o-2 has no price: its child fails, so the map fails, so the instance fails
        Run(
            "orders-failed",
            {"orders": [{"id": "o-1", "qty": 1, "price": 5}, {"id": "o-2", "qty": 2}]},
            includes=("enrich-child",),
        ),
        # the same after pure nodes ran in the decision step (the loop body's transforms)
        Run(
            "orders-pure",
            {"orders": [{"id": "o-1", "qty": 3, "price": 50}]},
            includes=("enrich-child",),
        ),
    ],
}


async def record(document: JSONObject, run: Run, workdir: Path) -> JSONObject | None:
    """Run one instance to its end; the replay file's content, or None if it did not finish."""
    inputs = run.inputs
    url = f"sqlite:///{workdir / 'cadenza.db'}"
    rt = await build(Settings(database_url=url, worker_id="replay-recorder"))
    try:
        for stem in run.includes:
            await rt.definitions.publish(read_document(EXAMPLES / f"{stem}.yaml"))
        stored = await rt.definitions.publish(document)
        await rt.engine.start()
        iid = await rt.engine.submit(StartInstance(stored.process_id, inputs))
        assert isinstance(iid, str), iid
        try:
            await asyncio.wait_for(rt.engine.wait_finished(iid), TIMEOUT_S)
        except TimeoutError:
            return None
        journal = await rt.store.journal(iid)
        row = await rt.store.get_instance(iid)
        assert row is not None
        tasks: JSONObject = {}
        for t in await rt.store.task_rows(iid):
            tasks[f"{t['scope']}|{t['node_id']}"] = {
                "status": t["status"],
                "output": t["output"],
                "attempt": t["attempt"],
            }
        replayed = Instance.replay(iid, [e for _, e in journal])
        if replayed.status.value != row.status or (replayed.outputs or None) != row.outputs:
            raise SystemExit(f"replay of {iid} disagrees with its row: not recording it")
        entries: list[JSON] = [
            {
                "seq": seq,
                "type": e.type_name,
                "event_id": e.event_id,
                "occurred_at": e.occurred_at,
                "data": e.data(),
            }
            for seq, e in journal
        ]
        return {
            "definition": document,
            "inputs": inputs,
            "instance_id": iid,
            "journal": entries,
            "expected": {"status": row.status, "outputs": row.outputs, "tasks": tasks},
        }
    finally:
        await rt.close()


async def main(names: list[str]) -> int:
    paths = sorted(EXAMPLES.glob("*.yaml"))
    written = 0
    for path in paths:
        document = read_document(path)
        for run in RUNS.get(path.stem, [Run(path.stem, {})]):
            file_name = run.file_name
            if names and path.stem not in names and file_name not in names:
                continue
            with tempfile.TemporaryDirectory(prefix="cadenza-record-") as tmp:
                try:
                    content = await record(document, run, Path(tmp))
                except Exception as exc:  # report and go on with the other examples
                    print(f"{file_name}: skipped ({type(exc).__name__}: {exc})")
                    continue
            if content is None:
                print(f"{file_name}: skipped (did not finish within {TIMEOUT_S:g}s)")
                continue
            target = OUT / f"{file_name}.json"
            target.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
            expected, journal = content["expected"], content["journal"]
            assert isinstance(expected, dict)
            assert isinstance(journal, list)
            print(f"{file_name}: {expected['status']}, {len(journal)} events -> {target}")
            written += 1
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
