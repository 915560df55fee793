"""Print the crash suite's counts as a Markdown table (for docs/reliability.md).

The suite (``pytest -m crash tests/crash``) writes ``bench/results/crash-points.json``, one row
per backend and crash point; this prints it with totals::

    python -m bench.crash [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SUMMARY = Path(__file__).resolve().parent / "results" / "crash-points.json"
COLUMNS = [
    ("backend", "backend"),
    ("point", "crash point"),
    ("kills", "SIGKILLs"),
    ("helper_kills", "helper kills"),
    ("restarts", "restarts"),
    ("episodes", "episodes"),
    ("instances", "instances"),
    ("lost", "lost"),
    ("duplicate_results", "recorded twice"),
    ("released_requeues", "released requeues"),
    ("charged_requeues", "charged requeues"),
    ("http_keys", "http results"),
    ("http_requests", "http requests"),
    ("seconds", "seconds"),
]
TOTALS = {k for k, _ in COLUMNS[2:]}


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(k, "")) for k, _ in COLUMNS) + " |")
    total: dict[str, object] = {"backend": "**total**", "point": ""}
    for key in TOTALS:
        values = [row.get(key, 0) for row in rows]
        total[key] = round(sum(v for v in values if isinstance(v, int | float)), 1)
    lines.append("| " + " | ".join(str(total.get(k, "")) for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the raw summary")
    args = parser.parse_args()
    if not SUMMARY.exists():
        sys.exit(f"{SUMMARY} is missing: run `pytest -m crash tests/crash` first")
    data = json.loads(SUMMARY.read_text())
    rows = [data[k] for k in sorted(data)]
    print(json.dumps(rows, indent=2) if args.json else table(rows))


if __name__ == "__main__":
    main()
