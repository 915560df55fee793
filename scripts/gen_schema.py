"""Write the published ``cadenza/v1`` JSON Schema, generated from the node catalog.

Usage: ``python scripts/gen_schema.py`` to write it, ``--check`` to fail when it is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cadenza.domain.schema import definition_json_schema

TARGET = Path(__file__).resolve().parents[1] / "src/cadenza/schemas/cadenza-v1.schema.json"


def render() -> str:
    """The schema file's text: sorted keys and a trailing newline so diffs stay stable."""
    return json.dumps(definition_json_schema(), sort_keys=True, indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is stale; run scripts/gen_schema.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
